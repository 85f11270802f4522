"""SOQL WHERE-clause predicates for the sandbox: how each condition matches a record, as Salesforce does."""

from __future__ import annotations

import datetime as dt
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

#: A datetime literal (``2026-12-01T00:00:00Z``, unquoted) parses to an aware ``dt.datetime``; a date literal
#: stays a ``YYYY-MM-DD`` string, which compares as the stored dates do.
Value = str | int | float | bool | dt.datetime | None

_ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class Predicate(Protocol):
    def evaluate(self, record: Mapping[str, Any]) -> bool: ...


def _fold(value: Any) -> Any:
    """Strings compare case-insensitively in SOQL; numbers and booleans as themselves."""
    return value.casefold() if isinstance(value, str) else value


def _instant(value: Any, literal: Value) -> Any:
    """A stored datetime (``2026-12-01T00:00:00.000+0000``) as an aware datetime when compared with a datetime
    literal, so instants compare whatever their written form; an unparsable value compares as null."""
    if not isinstance(literal, dt.datetime) or not isinstance(value, str):
        return value
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def _equal(value: Any, literal: Value) -> bool:
    value = _instant(value, literal)
    if literal is None or value is None:
        return value is None and literal is None
    if isinstance(literal, bool) or isinstance(value, bool):
        return value is literal
    return bool(_fold(value) == _fold(literal))


@dataclass(frozen=True, slots=True)
class Compare:
    field: str
    op: str
    literal: Value

    def evaluate(self, record: Mapping[str, Any]) -> bool:
        value = record.get(self.field)
        if self.op == "=":
            return _equal(value, self.literal)
        if self.op == "!=":
            return not _equal(value, self.literal)  # like SOQL, a null field is "not equal" to a value
        value = _instant(value, self.literal)
        if value is None or self.literal is None:
            return False
        try:
            return _ORDERING[self.op](_fold(value), _fold(self.literal))
        except TypeError:  # a string field compared with a number never matches
            return False


@dataclass(frozen=True, slots=True)
class In:
    field: str
    literals: tuple[Value, ...]
    negate: bool = False

    def evaluate(self, record: Mapping[str, Any]) -> bool:
        value = record.get(self.field)
        found = any(_equal(value, literal) for literal in self.literals)
        return found != self.negate


@dataclass(frozen=True, slots=True)
class Like:
    field: str
    pattern: re.Pattern[str]

    def evaluate(self, record: Mapping[str, Any]) -> bool:
        value = record.get(self.field)
        return isinstance(value, str) and self.pattern.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Not:
    inner: Predicate

    def evaluate(self, record: Mapping[str, Any]) -> bool:
        return not self.inner.evaluate(record)


@dataclass(frozen=True, slots=True)
class And:
    parts: tuple[Predicate, ...]

    def evaluate(self, record: Mapping[str, Any]) -> bool:
        return all(part.evaluate(record) for part in self.parts)


@dataclass(frozen=True, slots=True)
class Or:
    parts: tuple[Predicate, ...]

    def evaluate(self, record: Mapping[str, Any]) -> bool:
        return any(part.evaluate(record) for part in self.parts)


def like_pattern(chars: tuple[tuple[str, bool], ...]) -> re.Pattern[str]:
    """A case-insensitive regex for a LIKE literal: bare ``%`` / ``_`` are wildcards, escaped ones literal."""
    pieces = []
    for char, escaped in chars:
        if not escaped and char == "%":
            pieces.append(".*")
        elif not escaped and char == "_":
            pieces.append(".")
        else:
            pieces.append(re.escape(char))
    return re.compile("".join(pieces), re.IGNORECASE | re.DOTALL)
