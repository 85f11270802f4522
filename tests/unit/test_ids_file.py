"""Reading an ids file: streamed, capped at the API's 100,000 Ids, bad lines named by number."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.crm.ids import MAX_IDS, canonical_id, parse_ids, read_ids_file
from worker.errors import InvalidFilter


def test_parsing_stops_at_the_id_past_the_cap() -> None:
    consumed = 0

    def endless() -> Iterator[str]:
        nonlocal consumed
        for n in range(10 * MAX_IDS):
            consumed += 1
            yield f"001{n:012d}"

    with pytest.raises(InvalidFilter, match="more than 100,000 record Ids"):
        parse_ids(endless())
    assert consumed == MAX_IDS + 1


def test_the_first_bad_lines_are_named_and_reading_stops_after_them() -> None:
    lines = ["001000000000001", *(f"bad{n}" for n in range(1_000))]

    with pytest.raises(InvalidFilter) as caught:
        parse_ids(lines)

    assert "line 2: 'bad0'" in caught.value.message and "line 6: 'bad4'" in caught.value.message
    assert "line 8" not in caught.value.message and caught.value.message.endswith("…")


def test_an_over_long_line_is_read_in_pieces_and_refused(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text(canonical_id("001000000000001") + "\n" + "x" * 5_000_000 + "\n", encoding="utf-8")

    with pytest.raises(InvalidFilter, match="line 2: 'xxxx"):
        read_ids_file(path)


def test_a_file_that_is_not_utf8_says_so(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_bytes(b"\xff\xfe001000000000001\n")

    with pytest.raises(InvalidFilter, match=r"ids\.txt is not UTF-8 text"):
        read_ids_file(path)
