"""A minimal SOQL parser and evaluator for the Salesforce sandbox.

``SELECT f1, f2 | COUNT() FROM Obj [WHERE expr] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]``
where ``expr`` has AND / OR / NOT / parentheses, ``= != <> < <= > >=``, ``[NOT] IN (...)``, ``LIKE``, null,
true/false, numbers, dates, datetimes (compared as instants) and string literals with SOQL backslash escapes.
Like real SOQL, names and keywords are case-insensitive, string comparisons ignore case, ``!=`` matches nulls,
and AND and OR may not be mixed at one level without parentheses.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from worker.sandbox.soql_expr import And, Compare, In, Like, Not, Or, Predicate, Value, like_pattern

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<string>')
      | (?P<date>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))?)
      | (?P<number>[+-]?\d+(?:\.\d+)?)
      | (?P<op>!=|<>|<=|>=|=|<|>)
      | (?P<punct>[(),])
      | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)""",
    re.VERBOSE,
)
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
_LIKE_ESCAPES = frozenset("_%")


class SoqlError(Exception):
    """A query Salesforce would refuse; ``code`` is its errorCode (MALFORMED_QUERY, INVALID_FIELD, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    chars: tuple[tuple[str, bool], ...] = ()  # a string literal's characters, each flagged "was escaped"

    def is_keyword(self, *words: str) -> bool:
        return self.kind == "name" and self.text.upper() in words


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query with field names resolved to the object's canonical API names."""

    fields: tuple[str, ...]
    sobject: str
    where: Predicate | None = None
    order_by: tuple[tuple[str, bool, bool], ...] = ()  # (field, descending, nulls_last)
    limit: int | None = None
    offset: int = 0
    count: bool = False  # SELECT COUNT(): only totalSize is answered

    def matches(self, record: Mapping[str, Any]) -> bool:
        return self.where is None or self.where.evaluate(record)

    def run(self, records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The matching records, ordered, with OFFSET and LIMIT applied."""
        found = [record for record in records if self.matches(record)]
        for name, descending, nulls_last in reversed(self.order_by):
            found.sort(key=_sort_key(name, nulls_last, descending), reverse=descending)
        end = None if self.limit is None else self.offset + self.limit
        return found[self.offset : end]


def tokenize(text: str) -> list[Token]:
    """Split SOQL into tokens; a bad character or string literal is a MALFORMED_QUERY."""
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected character {text[position]!r} at {position + 1}")
        kind = match.lastgroup or ""
        if kind == "string":
            chars, position = _string_literal(text, match.end())
            tokens.append(Token("string", text[match.start() : position], chars))
            continue
        if kind != "ws":
            tokens.append(Token(kind, match.group()))
        position = match.end()
    return tokens


def _string_literal(text: str, position: int) -> tuple[tuple[tuple[str, bool], ...], int]:
    chars: list[tuple[str, bool]] = []
    while position < len(text):
        char = text[position]
        if char == "'":
            return tuple(chars), position + 1
        if char != "\\":
            chars.append((char, False))
            position += 1
            continue
        escaped, position = _escape(text, position + 1)
        chars.append((escaped, True))
    raise SoqlError("MALFORMED_QUERY", "unterminated string literal")


def _escape(text: str, position: int) -> tuple[str, int]:
    code = text[position : position + 1]
    if code.lower() in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[code.lower()], position + 1
    if code in _LIKE_ESCAPES:
        return code, position + 1
    if code == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[position + 1 : position + 5]):
        return chr(int(text[position + 1 : position + 5], 16)), position + 5
    raise SoqlError("MALFORMED_QUERY", f"Invalid string literal: illegal escape sequence '\\{code}'")


def parse(text: str, schema: Mapping[str, Sequence[str]]) -> Query:
    """Parse ``text`` against ``schema`` (object name → its field API names).

    Raises:
        SoqlError: MALFORMED_QUERY (syntax), INVALID_TYPE (unknown object), INVALID_FIELD (unknown field).
    """
    return _Parser(tokenize(text), schema).query()


class _Parser:
    def __init__(self, tokens: list[Token], schema: Mapping[str, Sequence[str]]) -> None:
        self._tokens = tokens
        self._at = 0
        self._schema = {name.lower(): (name, fields) for name, fields in schema.items()}
        self._fields: dict[str, str] = {}
        self._object = ""

    # --- token helpers -------------------------------------------------------------------------------------

    def _peek(self) -> Token | None:
        return self._tokens[self._at] if self._at < len(self._tokens) else None

    def _next(self) -> Token:
        token = self._peek()
        if token is None:
            raise SoqlError("MALFORMED_QUERY", "unexpected end of query")
        self._at += 1
        return token

    def _accept(self, *words: str) -> Token | None:
        token = self._peek()
        if token is not None and token.is_keyword(*words):
            self._at += 1
            return token
        return None

    def _accept_punct(self, text: str) -> bool:
        token = self._peek()
        if token is not None and token.kind == "punct" and token.text == text:
            self._at += 1
            return True
        return False

    def _expect(self, word: str) -> None:
        token = self._next()
        if not token.is_keyword(word) and token.text != word:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: {token.text!r}, expected {word}")

    def _integer(self) -> int:
        token = self._next()
        if token.kind != "number" or not token.text.isdigit():
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: {token.text!r}, expected a whole number")
        return int(token.text)

    # --- grammar -------------------------------------------------------------------------------------------

    def query(self) -> Query:
        self._expect("SELECT")
        count = self._count()
        raw_fields = [] if count else self._field_list()
        self._expect("FROM")
        self._bind_object(self._next())
        fields = tuple(self._field(token) for token in raw_fields)
        where = self._expr() if self._accept("WHERE") else None
        order_by = self._order_by() if self._accept("ORDER") else ()
        limit = self._integer() if self._accept("LIMIT") else None
        offset = self._integer() if self._accept("OFFSET") else 0
        if self._peek() is not None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: {self._next().text!r}")
        return Query(fields, self._object, where, order_by, limit, offset, count)

    def _count(self) -> bool:
        """``COUNT()`` (no argument) instead of a field list."""
        ahead = [token.text for token in self._tokens[self._at : self._at + 3]]
        if len(ahead) == 3 and ahead[0].upper() == "COUNT" and ahead[1:] == ["(", ")"]:
            self._at += 3
            return True
        return False

    def _field_list(self) -> list[Token]:
        tokens = [self._name()]
        while self._accept_punct(","):
            tokens.append(self._name())
        lowered = [token.text.lower() for token in tokens]
        duplicates = sorted({name for name in lowered if lowered.count(name) > 1})
        if duplicates:
            raise SoqlError("MALFORMED_QUERY", f"duplicate field selected: {duplicates[0]}")
        return tokens

    def _name(self) -> Token:
        token = self._next()
        if token.kind != "name":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: {token.text!r}")
        return token

    def _bind_object(self, token: Token) -> None:
        entry = self._schema.get(token.text.lower()) if token.kind == "name" else None
        if entry is None:
            raise SoqlError("INVALID_TYPE", f"sObject type '{token.text}' is not supported.")
        self._object = entry[0]
        self._fields = {name.lower(): name for name in entry[1]}

    def _field(self, token: Token) -> str:
        if token.kind != "name":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: {token.text!r}")
        name = self._fields.get(token.text.lower())
        if name is None:
            raise SoqlError("INVALID_FIELD", f"No such column '{token.text}' on entity '{self._object}'.")
        return name

    def _expr(self) -> Predicate:
        parts = [self._unary()]
        joiner: str | None = None
        while (token := self._accept("AND", "OR")) is not None:
            word = token.text.upper()
            if joiner is not None and word != joiner:
                # Real SOQL demands parentheses when AND and OR meet; so do we.
                raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{token.text}'")
            joiner = word
            parts.append(self._unary())
        if joiner is None:
            return parts[0]
        return And(tuple(parts)) if joiner == "AND" else Or(tuple(parts))

    def _unary(self) -> Predicate:
        if self._accept("NOT"):
            return Not(self._unary())
        if self._accept_punct("("):
            inner = self._expr()
            self._expect(")")
            return inner
        return self._condition()

    def _condition(self) -> Predicate:
        field = self._field(self._next())
        if self._accept("NOT"):
            self._expect("IN")
            return In(field, self._value_list(), negate=True)
        if self._accept("IN"):
            return In(field, self._value_list())
        if self._accept("LIKE"):
            token = self._next()
            if token.kind != "string":
                raise SoqlError("MALFORMED_QUERY", "LIKE needs a string literal")
            return Like(field, like_pattern(token.chars))
        operator = self._next()
        if operator.kind != "op":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: {operator.text!r}")
        return Compare(field, "!=" if operator.text == "<>" else operator.text, self._value())

    def _value_list(self) -> tuple[Value, ...]:
        self._expect("(")
        values = [self._value()]
        while self._accept_punct(","):
            values.append(self._value())
        self._expect(")")
        return tuple(values)

    def _value(self) -> Value:
        token = self._next()
        if token.kind == "string":
            return "".join(char for char, _ in token.chars)
        if token.kind == "number":
            return float(token.text) if "." in token.text else int(token.text)
        if token.kind == "date":
            return _datetime(token.text) if "T" in token.text else token.text
        words: dict[str, Value] = {"NULL": None, "TRUE": True, "FALSE": False}
        if token.kind == "name" and token.text.upper() in words:
            return words[token.text.upper()]
        raise SoqlError("MALFORMED_QUERY", f"unexpected token: {token.text!r}, expected a value")

    def _order_by(self) -> tuple[tuple[str, bool, bool], ...]:
        self._expect("BY")
        items = [self._order_item()]
        while self._accept_punct(","):
            items.append(self._order_item())
        return tuple(items)

    def _order_item(self) -> tuple[str, bool, bool]:
        field = self._field(self._next())
        descending = self._accept("DESC") is not None
        if not descending:
            self._accept("ASC")
        nulls_last = descending  # Salesforce's default: nulls first ascending, last descending
        if self._accept("NULLS"):
            which = self._next()
            if not which.is_keyword("FIRST", "LAST"):
                raise SoqlError(
                    "MALFORMED_QUERY", f"unexpected token: {which.text!r}, expected FIRST or LAST"
                )
            nulls_last = which.is_keyword("LAST")
        return field, descending, nulls_last


def _datetime(text: str) -> dt.datetime:
    """A SOQL datetime literal (the token pattern demands its zone, ``Z`` or an offset) as an aware instant."""
    return dt.datetime.fromisoformat(text)


def _sort_key(
    name: str, nulls_last: bool, descending: bool
) -> Callable[[Mapping[str, Any]], tuple[int, int, Any]]:
    # reverse=True also reverses where nulls go, so flip their rank to keep "nulls last" meaning last.
    null_rank = int(nulls_last) ^ int(descending)

    def key(record: Mapping[str, Any]) -> tuple[int, int, Any]:
        value = record.get(name)
        if value is None:
            return (null_rank, 0, "")
        if isinstance(value, bool | int | float):
            return (1 - null_rank, 0, value)
        return (1 - null_rank, 1, str(value).casefold())

    return key
