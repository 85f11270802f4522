"""The plain tables of the job-status commands: aligned in terminal cells, data never read as markup."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from worker.cli.tables import print_table, render_table


def printed(*args: object, **kwargs: object) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=40, color_system=None)
    print_table(console, *args, **kwargs)  # type: ignore[arg-type]
    return out.getvalue().splitlines()


def test_columns_line_up_in_terminal_cells_with_counts_flush_right() -> None:
    lines = printed(
        ("id", "connection", "planned"),
        [("7", "brønnøysund", "2000"), ("12", "東京", "5")],
        right=("id", "planned"),
        title="runs",
    )
    assert lines == [
        "runs",
        "id  connection   planned",
        "──  ───────────  ───────",
        " 7  brønnøysund     2000",
        "12  東京               5",
    ]


def test_cells_print_as_written_not_as_markup() -> None:
    lines = printed(("record", "message"), [("001[red]", "[bold]x[/bold] failed")])
    assert lines[2] == "001[red]  [bold]x[/bold] failed"


def test_long_rows_are_not_folded_into_the_console_width() -> None:
    message = "validation rule Account_Name_Required rejected the update " * 2
    lines = printed(("code", "message"), [("FIELD_CUSTOM_VALIDATION_EXCEPTION", message)])
    assert len(lines) == 3 and lines[2].endswith(message.rstrip())


def test_the_header_is_bold_and_the_rows_are_not() -> None:
    text = render_table(("a", "b"), [("1", "2")])
    assert [(span.start, span.end, str(span.style)) for span in text.spans] == [(0, 4, "bold")]


def test_a_row_with_the_wrong_number_of_cells_is_refused() -> None:
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        render_table(("a", "b", "c"), [("1", "2")])


def test_control_characters_from_data_cannot_reach_the_terminal() -> None:
    lines = printed(
        ("record", "message"), [("001", "\x1b[31mred\x1b[0m\nsecond line\tx")], right=iter(["record"])
    )
    assert lines[2] == "   001  \ufffd[31mred\ufffd[0m\ufffdsecond line\ufffdx"
