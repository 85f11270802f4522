"""Salesforce record Ids: validation (15 or 18 characters), the 18-character form, and ``Id IN`` batches.

A 15-character Id is case-sensitive; the 18-character form adds three characters that encode the case of the
first fifteen, so an 18-character Id survives a spreadsheet that changed its case. We always work with the
canonical 18-character form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

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


#: How many bad lines an ids file's error names (the first ones, by line number).
MAX_BAD_LINES_SHOWN = 5
#: The most lines an ids file may have (room for comments, blanks and repeats around ``MAX_IDS`` Ids): a file of
#: one Id repeated a billion times would otherwise cost minutes without ever reaching the cap.
MAX_LINES = 10 * MAX_IDS


def parse_ids(lines: Iterable[str], source: str = "ids file") -> list[str]:
    """Distinct canonical Ids from text lines (one per line; blank lines and ``#`` comments are skipped).

    The lines are consumed one at a time and no further than the Id past the cap, so a huge file costs
    neither memory nor minutes.

    Raises:
        InvalidFilter: Lines are not Ids (the message names the first ones by number), or there is no Id,
            or more than ``MAX_IDS``.
    """
    ids: dict[str, None] = {}
    bad: list[str] = []
    for number, line in enumerate(lines, start=1):
        if number > MAX_LINES:
            raise InvalidFilter(
                f"{source} has more than {MAX_LINES:,} lines (one backfill takes at most {MAX_IDS:,} record Ids, "
                "one per line); remove the repeats, or split it"
            )
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            ids[canonical_id(text)] = None
        except InvalidFilter as exc:
            bad.append(f"line {number}: {exc.message}")
            if len(bad) > MAX_BAD_LINES_SHOWN:
                break
        if len(ids) > MAX_IDS:
            raise InvalidFilter(
                f"{source} names more than {MAX_IDS:,} record Ids (the most one backfill takes); "
                "split it, or select the records with --where filters instead"
            )
    if bad:
        shown = "; ".join(bad[:MAX_BAD_LINES_SHOWN]) + ("; …" if len(bad) > MAX_BAD_LINES_SHOWN else "")
        raise InvalidFilter(f"{source} has lines that are not record Ids: {shown}")
    if not ids:
        raise InvalidFilter(f"{source} names no record Id")
    return list(ids)


#: The longest line an ids file may hold (an Id, spaces and a comment); longer ones are not read whole.
MAX_LINE_CHARS = 1_000


def _lines(stream: TextIO) -> Iterator[str]:
    while line := stream.readline(MAX_LINE_CHARS + 1):
        rest = line
        while len(rest) > MAX_LINE_CHARS and not rest.endswith("\n"):
            rest = stream.readline(MAX_LINE_CHARS + 1)  # skip an over-long line in bounded pieces
        yield line  # an over-long line is kept only in part: it is reported as not an Id


def read_ids_file(path: Path) -> list[str]:
    """The Ids of an ids file (UTF-8 text, one Id per line), read line by line.

    Raises:
        InvalidFilter: It cannot be read, is not UTF-8 text, or its lines are not Ids (see ``parse_ids``).
    """
    try:
        with path.open(encoding="utf-8-sig") as stream:
            return parse_ids(_lines(stream), str(path))
    except UnicodeDecodeError:
        raise InvalidFilter(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise InvalidFilter(f"cannot read the ids file {path}: {exc.strerror}") from None


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
