"""The benchmarks' result rows, the table printed at the end, and RESULTS.md."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True, slots=True)
class Row:
    """One measured quantity: its value, what it is compared with, the ratio, and whether the target holds.

    ``met`` is None for a row that only informs (no target).
    """

    bench: str
    metric: str
    measured: str
    reference: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None


@dataclass
class Section:
    """Everything one benchmark reports: rows, the settings it ran with, and notes in prose."""

    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(
        self,
        metric: str,
        measured: str,
        reference: str = "",
        ratio: float | None = None,
        *,
        target: str = "",
        met: bool | None = None,
    ) -> Row:
        """Append one row to this section."""
        row = Row(self.name, metric, measured, reference, ratio, target, met)
        self.rows.append(row)
        return row


def verdict(met: bool | None) -> str:
    return "" if met is None else ("met" if met else "MISSED")


def ratio_text(ratio: float | None) -> str:
    if ratio is None:
        return ""
    return f"{ratio:.3f}" if ratio < 10 else f"{ratio:.1f}"


HEADERS = ("benchmark", "metric", "measured", "compared with", "ratio", "target", "verdict")


def _cells(row: Row) -> tuple[str, ...]:
    return (
        row.bench,
        row.metric,
        row.measured,
        row.reference,
        ratio_text(row.ratio),
        row.target,
        verdict(row.met),
    )


def print_table(sections: Sequence[Section], console: Console | None = None) -> None:
    """The results table on the terminal (one line per row, every benchmark's ratios)."""
    console = console or Console(width=200)
    table = Table(*HEADERS, title="regsync benchmarks", show_lines=False)
    for section in sections:
        for row in section.rows:
            style = "red" if row.met is False else None
            table.add_row(*_cells(row), style=style)
    console.print(table)


def markdown_table(rows: Iterable[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for row in rows:
        cells = [cell.replace("|", "\\|") for cell in _cells(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_markdown(sections: Sequence[Section], machine: dict[str, str], command: str) -> str:
    """RESULTS.md: the machine, the whole table, then each benchmark's settings and notes."""
    parts = ["# regsync benchmark results", "", f"Command: `{command}`", "", "## Machine", ""]
    parts += [f"- {key}: {value}" for key, value in machine.items()]
    parts += ["", "## Results", "", markdown_table(row for s in sections for row in s.rows), ""]
    missed = [row for s in sections for row in s.rows if row.met is False]
    summary = (
        "every target met"
        if not missed
        else "targets missed: " + "; ".join(f"{row.bench} / {row.metric}" for row in missed)
    )
    parts += [f"Summary: {summary}.", ""]
    for section in sections:
        parts += [f"## {section.title}", ""]
        if section.settings:
            parts += ["Settings: " + ", ".join(f"{k} = {v}" for k, v in section.settings.items()), ""]
        parts += [f"- {note}" for note in section.notes]
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def write_results(path: Path, sections: Sequence[Section], machine: dict[str, str], command: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(sections, machine, command), encoding="utf-8")
