"""The compliance report as one self-contained HTML page: summary tables and an inline-SVG run timeline.

No scripts, fonts or images from elsewhere: the file opens offline and can be archived as evidence.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

from worker.ledger.models import RunStatus

STATUS_COLOURS: dict[str, str] = {
    RunStatus.SUCCEEDED: "#2e7d32",
    RunStatus.PARTIALLY_FAILED: "#f9a825",
    RunStatus.FAILED: "#c62828",
    RunStatus.CANCELLED: "#757575",
    "skipped": "#bdbdbd",  # a scheduled slot that did not run (worker.scheduling)
    RunStatus.RUNNING: "#1565c0",
    RunStatus.QUEUED: "#90caf9",
    RunStatus.PAUSED_BUDGET: "#6a1b9a",
}
ALERT_COLOUR = "#d81b60"
#: The plot area's background (distinct, so a screenshot can find the chart).
PLOT_COLOUR = "#eef3fb"
WIDTH, LABEL_W, ROW_H, AXIS_H = 1100, 170, 30, 40
MIN_RUN_W = 3.0

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#212121}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:24px 0 8px}
table{border-collapse:collapse;margin:4px 0 12px}td,th{border:1px solid #ddd;padding:4px 10px;text-align:left}
th{background:#f5f5f5}.ok{color:#2e7d32;font-weight:600}.bad{color:#c62828;font-weight:600}
.muted{color:#757575}svg text{font-size:12px;fill:#424242}
"""


def _table(rows: list[tuple[str, Any]], header: tuple[str, str] | None = None) -> str:
    head = f"<tr><th>{escape(header[0])}</th><th>{escape(header[1])}</th></tr>" if header else ""
    body = "".join(f"<tr><td>{escape(str(k))}</td><td>{escape(_fmt(v))}</td></tr>" for k, v in rows)
    return f"<table>{head}{body}</table>"


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _minute(text: str) -> str:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")


def _when(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


class _Scale:
    def __init__(self, start: dt.datetime, end: dt.datetime) -> None:
        self.start, self.span = start, max((end - start).total_seconds(), 1.0)

    def x(self, at: dt.datetime) -> float:
        share = min(max((at - self.start).total_seconds() / self.span, 0.0), 1.0)
        return LABEL_W + share * (WIDTH - LABEL_W - 10)


def _axis(scale: _Scale, height: float) -> list[str]:
    left, right = scale.x(scale.start), scale.x(scale.start + dt.timedelta(seconds=scale.span))
    parts = [
        f'<rect class="plot" x="{left:.1f}" y="0" width="{right - left:.1f}" height="{height}" fill="{PLOT_COLOUR}"/>'
    ]
    for i in range(7):
        at = scale.start + dt.timedelta(seconds=scale.span * i / 6)
        x = scale.x(at)
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height:.1f}" stroke="#eeeeee"/>')
        label = at.strftime("%m-%d %H:%M")
        anchor = "end" if i == 6 else "middle"
        parts.append(f'<text x="{x:.1f}" y="{height + 16:.1f}" text-anchor="{anchor}">{escape(label)}</text>')
    return parts


def _run_marks(
    runs: list[dict[str, Any]], rows: dict[str, int], scale: _Scale, until: dt.datetime
) -> list[str]:
    parts = []
    for run in runs:
        start, end = _when(run["start"]), _when(run["end"]) or until
        if start is None:
            continue
        x0, x1 = scale.x(start), scale.x(end)
        y = rows[run["connection"]] * ROW_H + 6
        colour = STATUS_COLOURS.get(run["status"], "#9e9e9e")
        title = escape(f"run {run['id']} {run['status']}")
        parts.append(
            f'<rect class="run" x="{x0:.1f}" y="{y}" width="{max(x1 - x0, MIN_RUN_W):.1f}" height="{ROW_H - 12}" '
            f'fill="{colour}"><title>{title}</title></rect>'
        )
    return parts


def _alert_marks(alerts: list[dict[str, Any]], rows: dict[str, int], scale: _Scale) -> list[str]:
    parts = []
    for alert in alerts:
        at = _when(alert["at"])
        if at is None or alert["connection"] not in rows:
            continue
        x, y = scale.x(at), rows[alert["connection"]] * ROW_H + 2
        title = escape(f"alert {alert['id']} {alert['kind']}")
        parts.append(
            f'<polygon class="alert" points="{x - 5:.1f},{y} {x + 5:.1f},{y} {x:.1f},{y + 9}" '
            f'fill="{ALERT_COLOUR}"><title>{title}</title></polygon>'
        )
    return parts


def timeline_svg(report: dict[str, Any]) -> str:
    """The run timeline: one lane per connection, a bar per run coloured by outcome, a marker per alert."""
    timeline = report["timeline"]
    start, until = _when(report["window"]["since"]), _when(report["window"]["until"])
    assert start is not None and until is not None
    names = sorted(
        {r["connection"] for r in timeline["runs"]} | {a["connection"] for a in timeline["alerts"]}
    )
    rows = {name: index for index, name in enumerate(names)}
    height = max(len(names), 1) * ROW_H
    scale = _Scale(start, until)
    parts = _axis(scale, height)
    parts += [
        f'<text x="4" y="{rows[name] * ROW_H + ROW_H / 2 + 4:.1f}">{escape(name)}</text>' for name in names
    ]
    parts += _run_marks(timeline["runs"], rows, scale, until)
    parts += _alert_marks(timeline["alerts"], rows, scale)
    if not names:
        parts.append(f'<text x="{LABEL_W}" y="18" class="muted">no runs in this window</text>')
    total = height + AXIS_H
    return (
        f'<svg id="run-timeline" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{total}" '
        f'viewBox="0 0 {WIDTH} {total}" role="img" aria-label="Run timeline">{"".join(parts)}</svg>'
    )


def _legend() -> str:
    items = [
        f'<span style="display:inline-block;width:12px;height:12px;background:{c};margin:0 4px 0 12px"></span>'
        f"{escape(s)}"
        for s, c in STATUS_COLOURS.items()
    ]
    alert = f'<span style="color:{ALERT_COLOUR};margin-left:12px">▼</span> alert opened'
    return f'<p class="muted">{"".join(items)}{alert}</p>'


def _summary(report: dict[str, Any]) -> str:
    chain = report["audit_chain"]
    state = (
        '<span class="ok">intact</span>'
        if chain["ok"]
        else f'<span class="bad">broken at event {chain["broken_id"]}</span>'
    )
    notices = report["notices"]
    pct = notices["within_deadline_pct"]
    return (
        f"<h2>Notices</h2>{_table([(k, v) for k, v in notices.items()])}"
        f"<p>Notices sent within their deadline: <b>{escape(_fmt(pct))}{'%' if pct is not None else ''}</b></p>"
        f"<h2>Time to detect / notify (seconds)</h2>"
        f"{_table([(f'detect {k}', v) for k, v in report['time_to_detect_s'].items()])}"
        f"{_table([(f'notify {k}', v) for k, v in report['time_to_notify_s'].items()])}"
        f"<h2>Audit chain</h2><p>{state}, {chain['checked']} events checked</p>"
    )


def render_html(report: dict[str, Any]) -> str:
    """The whole page."""
    runs, alerts = report["runs"], report["alerts"]
    window = report["window"]
    alert_rows = [*alerts["by_kind"].items(), ("escalations", alerts["escalations"])]
    alert_rows += [("acknowledged", alerts["acknowledged"]), ("recovery notices", alerts["recovery_notices"])]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>regsync compliance report</title><style>{_CSS}</style></head><body>"
        f"<h1>regsync compliance report</h1>"
        f'<p class="muted">{escape(_minute(window["since"]))} – {escape(_minute(window["until"]))} UTC</p>'
        f"<h2>Run timeline</h2>{timeline_svg(report)}{_legend()}"
        f"<h2>Runs ({runs['total']})</h2>{_table(list(runs['by_status'].items()), ('status', 'runs'))}"
        f"<h2>Alerts ({alerts['total']})</h2>{_table(alert_rows, ('kind', 'alerts'))}"
        f"{_summary(report)}</body></html>"
    )
