"""The compliance report's run timeline as inline SVG: one lane per connection, day (or hour) ticks, a bar per
run coloured by outcome, and failed, partially failed, cancelled and stuck runs drawn full height, at least
``PROBLEM_MIN_W`` wide and labelled with their run id, so a run of seconds in a 30-day window still shows (and
prints) without hovering.
"""

from __future__ import annotations

import datetime as dt
import math
from html import escape
from typing import Any

from worker.alerts.report_facts import ATTENTION_FINAL, STUCK
from worker.ledger.models import RunStatus

STATUS_COLOURS: dict[str, str] = {
    RunStatus.SUCCEEDED: "#2e7d32",
    RunStatus.PARTIALLY_FAILED: "#f9a825",
    RunStatus.FAILED: "#c62828",
    STUCK: "#e65100",
    RunStatus.CANCELLED: "#757575",
    "skipped": "#bdbdbd",  # a scheduled slot that did not run (worker.scheduling)
    RunStatus.RUNNING: "#1565c0",
    RunStatus.QUEUED: "#90caf9",
    RunStatus.PAUSED_BUDGET: "#6a1b9a",
}
PROBLEMS = frozenset({*ATTENTION_FINAL, STUCK})
ALERT_COLOUR = "#d81b60"
#: The plot area's background (distinct, so a screenshot can find the chart).
PLOT_COLOUR = "#eef3fb"
WIDTH, LABEL_W, LANE_H, AXIS_H = 1100, 170, 56, 40
RUN_MIN_W, PROBLEM_MIN_W = 3.0, 8.0
#: Tick steps to choose from (the first giving at most MAX_TICKS ticks), and how many to label at most.
DAY_STEPS, HOUR_STEPS, MAX_TICKS, MAX_LABELS = (1, 2, 7, 14, 28, 91, 182, 364), (1, 2, 3, 6, 12), 31, 16


def _when(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


class _Scale:
    def __init__(self, start: dt.datetime, end: dt.datetime) -> None:
        self.start, self.end = start, end
        self.span = max((end - start).total_seconds(), 1.0)

    def x(self, at: dt.datetime) -> float:
        share = min(max((at - self.start).total_seconds() / self.span, 0.0), 1.0)
        return LABEL_W + share * (self.right - LABEL_W)

    @property
    def right(self) -> float:
        return WIDTH - 10.0


def ticks(start: dt.datetime, end: dt.datetime) -> tuple[list[dt.datetime], str]:
    """Tick times (UTC midnights for a period of two days or more, else whole hours) and their label format."""
    start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
    days = (end - start) / dt.timedelta(days=1)
    if days >= 2:
        step = dt.timedelta(days=next((s for s in DAY_STEPS if days / s <= MAX_TICKS), DAY_STEPS[-1]))
        first, fmt = start.replace(hour=0, minute=0, second=0, microsecond=0), "%m-%d"
    else:
        hours = days * 24
        step = dt.timedelta(hours=next((s for s in HOUR_STEPS if hours / s <= MAX_TICKS), 12))
        first, fmt = start.replace(minute=0, second=0, microsecond=0), "%m-%d %H:00"
    found, at = [], first
    while at <= end:
        if at >= start:
            found.append(at)
        at += step
    return found, fmt


def _axis(scale: _Scale, height: float) -> list[str]:
    left, right = scale.x(scale.start), scale.x(scale.end)
    parts = [
        f'<rect class="plot" x="{left:.1f}" y="0" width="{right - left:.1f}" height="{height}" fill="{PLOT_COLOUR}"/>'
    ]
    times, fmt = ticks(scale.start, scale.end)
    every = max(1, math.ceil(len(times) / MAX_LABELS))
    for index, at in enumerate(times):
        x = scale.x(at)
        parts.append(
            f'<line class="tick" x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height + 4:.1f}" stroke="#b0bec5"/>'
        )
        if index % every == 0:
            label = escape(at.strftime(fmt))
            parts.append(f'<text x="{x:.1f}" y="{height + 17:.1f}" text-anchor="middle">{label}</text>')
    return parts


def _lanes(names: list[str], height: float) -> list[str]:
    parts = []
    for index, name in enumerate(names):
        y = index * LANE_H
        parts.append(f'<text x="4" y="{y + LANE_H / 2 + 4:.1f}">{escape(name)}</text>')
        parts.append(f'<line x1="0" y1="{y + LANE_H}" x2="{WIDTH}" y2="{y + LANE_H}" stroke="#cfd8dc"/>')
    return parts if names else [f'<text x="{LABEL_W}" y="18">no connection in this report</text>']


def _bar(run: dict[str, Any], lane: int, scale: _Scale) -> tuple[str, float]:
    """The run's bar (kept inside the plot, however short or late) and where it starts."""
    start, end = _when(run["start"]), _when(run["end"]) or scale.end
    assert start is not None
    x0, x1 = scale.x(start), scale.x(end)
    problem = run["status"] in PROBLEMS
    width = max(x1 - x0, PROBLEM_MIN_W if problem else RUN_MIN_W)
    x0 = min(x0, scale.right - width)
    y, h = (lane * LANE_H + 26, LANE_H - 30) if problem else (lane * LANE_H + 30, LANE_H - 36)
    colour = STATUS_COLOURS.get(run["status"], "#9e9e9e")
    kind = "run problem" if problem else "run"
    rect = (
        f'<rect class="{kind}" data-run="{run["id"]}" data-status="{escape(run["status"])}" x="{x0:.1f}" '
        f'y="{y}" width="{width:.1f}" height="{h}" fill="{colour}"/>'
    )
    return rect, x0


def _run_marks(runs: list[dict[str, Any]], lanes: dict[str, int], scale: _Scale) -> list[str]:
    """Ordinary runs first, problem runs on top, each problem labelled with its id above its bar (skipped when
    it would overlap the previous label of the lane: the table lists them all)."""
    drawn = [r for r in runs if r["connection"] in lanes and r["start"]]
    ordered = sorted(drawn, key=lambda r: (r["status"] in PROBLEMS, r["start"]))
    parts, labels = [], []
    for run in ordered:
        lane = lanes[run["connection"]]
        rect, left = _bar(run, lane, scale)
        parts.append(rect)
        if run["status"] in PROBLEMS:
            labels.append((lane, left, f"#{run['id']}"))
    return parts + _labels(labels, scale)


def _labels(labels: list[tuple[int, float, str]], scale: _Scale) -> list[str]:
    parts, taken = [], dict[int, float]()
    for lane, left, text in sorted(labels):
        width = 7.0 * len(text)
        x = min(left, scale.right - width)
        if x < taken.get(lane, 0.0):
            continue
        parts.append(f'<text class="runid" x="{x:.1f}" y="{lane * LANE_H + 22}">{escape(text)}</text>')
        taken[lane] = x + width + 4
    return parts


def _alert_marks(alerts: list[dict[str, Any]], lanes: dict[str, int], scale: _Scale) -> list[str]:
    parts = []
    for alert in alerts:
        at = _when(alert["at"])
        if at is None or alert["connection"] not in lanes:
            continue
        x, y = scale.x(at), lanes[alert["connection"]] * LANE_H + 2
        parts.append(
            f'<polygon class="alert" points="{x - 5:.1f},{y} {x + 5:.1f},{y} {x:.1f},{y + 9}" fill="{ALERT_COLOUR}"/>'
        )
    return parts


def timeline_svg(report: dict[str, Any]) -> str:
    """The run timeline of ``report`` (one lane per connection in its scope, with or without runs)."""
    start, until = _when(report["period"]["since"]), _when(report["period"]["until"])
    assert start is not None and until is not None
    names = [c["name"] for c in report["connections"]]
    lanes = {name: index for index, name in enumerate(names)}
    height = max(len(names), 1) * LANE_H
    scale = _Scale(start, until)
    parts = _axis(scale, height) + _lanes(names, height)
    parts += _run_marks(report["timeline"]["runs"], lanes, scale)
    parts += _alert_marks(report["timeline"]["alerts"], lanes, scale)
    total = height + AXIS_H
    return (
        f'<svg id="run-timeline" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{total}" '
        f'viewBox="0 0 {WIDTH} {total}" role="img" aria-label="Run timeline, one lane per connection">'
        f"{''.join(parts)}</svg>"
    )
