"""Plain aligned tables for the job-status commands (`runs list`, `runs show`, `alerts list`, …).

rich's ``Table`` measures, wraps and pads every cell through its renderable protocol: about 20 ms for twenty
rows of nine columns, more than the indexed ledger query behind `runs list` (a few ms). These tables hold
short values, so a header in bold, a rule and columns padded to their widest cell (in terminal cells, so
"Brønnøysund" and wide characters line up) say the same for a hundredth of the cost. Cells are ``Text``,
never markup: a record name like ``[red]`` prints as it is, and control characters print as U+FFFD. Lines
longer than the terminal are left for the terminal to wrap, as ``ps`` and ``kubectl get`` do, instead of being
folded cell by cell.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Sequence

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

GAP = "  "
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def render_table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, right: Iterable[str] = ()) -> Text:
    """``headers`` over ``rows``; columns named in ``right`` are right-aligned (counts, ids)."""
    body = [[_printable(cell) for cell in row] for row in rows]
    widths = [cell_len(h) for h in headers]
    for row in body:
        if len(row) != len(headers):
            raise ValueError(f"a row has {len(row)} cells for {len(headers)} columns")
        widths = [max(w, cell_len(cell)) for w, cell in zip(widths, row, strict=True)]
    right_aligned = set(right)
    flush_right = [h in right_aligned for h in headers]
    text = Text(end="")
    text.append(_line(headers, widths, flush_right), style="bold")
    text.append("\n" + GAP.join("─" * w for w in widths))
    for row in body:
        text.append("\n" + _line(row, widths, flush_right))
    return text


def print_table(
    console: Console,
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    right: Iterable[str] = (),
    title: str | None = None,
) -> None:
    """Print :func:`render_table`, with ``title`` on a line of its own above it."""
    if title:
        console.print(Text(title, style="italic"), soft_wrap=True)
    console.print(render_table(headers, rows, right=right), soft_wrap=True)


def print_table_with_notes(
    console: Console,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    note: str,
    notes: Sequence[str],
    *,
    title: str | None = None,
) -> None:
    """A table whose last column ``note`` holds free text (a message): as a column while the table fits the
    terminal, else each row's note on lines of its own under it, indented and wrapped between words. The other
    cells (Ids, codes) are never cut or wrapped."""
    with_notes = [[*row, text] for row, text in zip(rows, notes, strict=True)]
    table = render_table([*headers, note], with_notes)
    if max((cell_len(line) for line in table.plain.splitlines()), default=0) <= console.width:
        print_table(console, [*headers, note], with_notes, title=title)
        return
    lines = render_table(headers, rows).plain.splitlines()
    text = Text(end="")
    text.append(lines[0], style="bold")
    text.append("\n" + lines[1])
    for line, message in zip(lines[2:], notes, strict=True):
        text.append("\n" + line)
        for part in wrap_words(_printable(message), console.width - len(NOTE_INDENT)):
            text.append("\n" + NOTE_INDENT + part)
    if title:
        console.print(Text(title, style="italic"), soft_wrap=True)
    console.print(text, soft_wrap=True)


#: How far a row's note is indented under the row.
NOTE_INDENT = "    "


def wrap_words(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` cells, broken between words only (a longer word keeps its line)."""
    return textwrap.wrap(text, max(width, 20), break_long_words=False, break_on_hyphens=False) or [""]


def _printable(cell: str) -> str:
    """``cell`` with control characters (ESC sequences, newlines, tabs) shown as U+FFFD: cells hold values from
    Salesforce and the registry, which must not move the cursor, recolour the terminal or break the row."""
    return _CONTROL.sub("\ufffd", cell)


def _line(cells: Sequence[str], widths: Sequence[int], flush_right: Sequence[bool]) -> str:
    padded = (_pad(cell, width, right) for cell, width, right in zip(cells, widths, flush_right, strict=True))
    return GAP.join(padded).rstrip()


def _pad(cell: str, width: int, right: bool) -> str:
    fill = " " * (width - cell_len(cell))
    return fill + cell if right else cell + fill
