"""Salesforce record Ids: validation (15 or 18 characters), the 18-character form, and ``Id IN`` batches.

A 15-character Id is case-sensitive; the 18-character form adds three characters that encode the case of the
first fifteen, so an 18-character Id survives a spreadsheet that changed its case. We always work with the
canonical 18-character form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from worker.crm.soql import soql_quote
from worker.errors import InvalidFilter

_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-5]{3})?$")
#: Ids per ``Id IN (...)`` query: about 5,400 URL-encoded characters, well under the GET URL limit.
ID_BATCH = 200
#: An ids file may name at most this many records (a bigger selection is a filter, not a list).
MAX_IDS = 100_000


def _suffix(body: str) -> str:
    out = ""
    for start in (0, 5, 10):
        bits = sum(1 << i for i, char in enumerate(body[start : start + 5]) if "A" <= char <= "Z")
        out += _SUFFIX_ALPHABET[bits]
    return out


def _restore_case(body: str, suffix: str) -> str:
    """Apply the case the suffix encodes to the first 15 characters (a bit set on a digit fails the check)."""
    chars = list(body.lower())
    for block, code in enumerate(suffix.upper()):
        bits = _SUFFIX_ALPHABET.index(code)
        for i in range(5):
            if bits & (1 << i):
                chars[block * 5 + i] = chars[block * 5 + i].upper()
    return "".join(chars)


def canonical_id(raw: str) -> str:
    """The 18-character form of a Salesforce Id.

    Raises:
        InvalidFilter: ``raw`` is not a 15- or 18-character Id, or its last three characters do not match.
    """
    value = raw.strip()
    if not _ID.match(value):
        raise InvalidFilter(f"{value[:40]!r} is not a Salesforce record Id (15 or 18 letters and digits)")
    body, suffix = value[:15], value[15:].upper()
    if not suffix:
        return body + _suffix(body)
    if _suffix(body) == suffix:
        return body + suffix
    if body not in (body.lower(), body.upper()):  # the case looks intact, so the suffix must match it
        raise InvalidFilter(f"{value!r} is not a valid Salesforce record Id (its checksum does not match)")
    body = _restore_case(body, suffix)  # a spreadsheet changed the case: the suffix says what it was
    if _suffix(body) != suffix:
        raise InvalidFilter(f"{value!r} is not a valid Salesforce record Id (its checksum does not match)")
    return body + suffix


def parse_ids(lines: Iterable[str], source: str = "ids file") -> list[str]:
    """Distinct canonical Ids from text lines (one per line; blank lines and ``#`` comments are skipped).

    Raises:
        InvalidFilter: A line is not an Id (the message names the line), or there are none, or too many.
    """
    ids: dict[str, None] = {}
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            ids[canonical_id(text)] = None
        except InvalidFilter as exc:
            raise InvalidFilter(f"{source}, line {number}: {exc.message}") from None
        if len(ids) > MAX_IDS:
            raise InvalidFilter(f"{source} names more than {MAX_IDS} records; use --where filters instead")
    if not ids:
        raise InvalidFilter(f"{source} names no record Id")
    return list(ids)


def read_ids_file(path: Path) -> list[str]:
    """The Ids of an ids file (UTF-8 text, one Id per line)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidFilter(f"cannot read the ids file {path}: {exc.strerror}") from None
    return parse_ids(text.splitlines(), str(path))


def id_order(record_id: str) -> str:
    """Sort key matching Salesforce's ``ORDER BY Id`` for 18-character Ids (case-insensitive)."""
    return record_id.casefold()


def id_batches(ids: Iterable[str], size: int = ID_BATCH) -> Iterator[list[str]]:
    """The Ids sorted as ``ORDER BY Id`` sorts them, in batches of at most ``size``."""
    ordered = sorted(set(ids), key=id_order)
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def id_in(batch: Sequence[str]) -> str:
    """``Id IN ('…', …)`` for a batch of already validated Ids (quoted all the same)."""
    return "Id IN (" + ", ".join(soql_quote(canonical_id(record_id)) for record_id in batch) + ")"
