"""The compliance report as one self-contained HTML page: facts first (period, generation time, audit-chain
head, who is told), then the run timeline, the table of runs that need attention, and the counts.

No scripts, fonts or images from elsewhere: the file opens offline and can be archived as evidence. Nothing is
shown on hover only, and a print stylesheet lays it out on A4.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from worker.alerts.report_text import (
    ALERT_HEADERS,
    CONNECTION_HEADERS,
    alert_rows,
    alert_sentence,
    connection_rows,
    connection_warnings,
    distribution_sentence,
    minute,
    mode_words,
    notice_sentence,
    period_words,
)
from worker.alerts.report_timeline import ALERT_COLOUR, STATUS_COLOURS, timeline_svg

#: The header background of the table of runs that need attention (distinct, so a screenshot can find it).
ATTENTION_COLOUR = "#fff3e0"
_CSS = (
    """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#212121}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:24px 0 8px}
table{border-collapse:collapse;margin:4px 0 12px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#f5f5f5}code{font-size:12px;word-break:break-all}
.ok{color:#2e7d32;font-weight:600}.bad{color:#c62828;font-weight:600}.muted{color:#616161}
.warning{border:2px solid #c62828;background:#ffebee;color:#b71c1c;padding:8px 12px;margin:8px 0;font-weight:600}
svg{max-width:100%;height:auto}svg text{font-size:12px;fill:#424242}svg text.runid{font-size:11px;fill:#000}
.swatch{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
td.reason{max-width:520px;overflow-wrap:anywhere}
@page{size:A4;margin:12mm}
@media print{body{margin:0;font-size:10pt}h2{break-after:avoid}tr,.warning,svg{break-inside:avoid}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}td.reason{max-width:none}}
"""
    + f"table.attention th{{background:{ATTENTION_COLOUR}}}"
)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table of plain text cells (escaped here)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _facts(report: dict[str, Any]) -> str:
    chain = report["audit_chain"]
    state = (
        f'<span class="ok">intact</span>, {chain["checked"]} events checked'
        if chain["ok"]
        else f'<span class="bad">BROKEN at event {chain["broken_id"]}: {escape(str(chain["reason"]))}</span>'
    )
    head = f"<code>{escape(chain['head_hash'])}</code>" if chain["head_hash"] else "no audit event yet"
    names = ", ".join(c["name"] for c in report["connections"]) or "none"
    rows = [
        ("Period", escape(period_words(report))),
        ("Generated", escape(minute(report["generated_at"]) + " UTC")),
        ("Connections", escape(names)),
        ("Runs by mode", escape(mode_words(report["runs"]))),
        ("Audit chain", state),
        ("Audit chain head hash", head),
    ]
    return "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _notifications(report: dict[str, Any]) -> str:
    warnings = "".join(f'<p class="warning">⚠ {escape(line)}</p>' for line in connection_warnings(report))
    table = _table([h.capitalize() for h in CONNECTION_HEADERS], connection_rows(report))
    return f"<h2>Who is told</h2>{warnings}{table}"


def _legend() -> str:
    items = [
        f'<span class="swatch" style="background:{c}"></span>{escape(s.replace("_", " "))}'
        for s, c in STATUS_COLOURS.items()
    ]
    alert = f'<span style="color:{ALERT_COLOUR};margin-left:12px">▼</span> alert opened'
    note = (
        "Failed, partially failed, stuck and cancelled runs are drawn full height and labelled with their id."
    )
    return f'<p class="muted">{"".join(items)}{alert}</p><p class="muted">{note}</p>'


def _attention_row(row: dict[str, Any]) -> str:
    colour = STATUS_COLOURS.get(row["status"], "#9e9e9e")
    status = (
        f'<span class="swatch" style="background:{colour}"></span>{escape(row["status"].replace("_", " "))}'
    )
    ended = minute(row["finished_at"]) if row["finished_at"] else "not ended"
    cells = (str(row["id"]), row["connection"], minute(row["queued_at"]), ended)
    plain = "".join(f"<td>{escape(c)}</td>" for c in cells)
    return f'<tr data-run="{row["id"]}"><td>{status}</td>{plain}<td class="reason">{escape(row["reason"])}</td></tr>'


def _attention(report: dict[str, Any]) -> str:
    rows = report["attention"]
    title = f'<h2 id="attention">Runs that need attention ({len(rows)})</h2>'
    if not rows:
        return title + "<p>No failed, partially failed, stuck or cancelled run in this period.</p>"
    headers = ("Status", "Run", "Connection", "Queued (UTC)", "Ended (UTC)", "Reason")
    head = "".join(f"<th>{h}</th>" for h in headers)
    return f'{title}<table class="attention"><tr>{head}</tr>{"".join(map(_attention_row, rows))}</table>'


def _alerts(report: dict[str, Any]) -> str:
    timing = [
        ("Time to detect", distribution_sentence(report["time_to_detect_s"])),
        ("Time to notify", distribution_sentence(report["time_to_notify_s"])),
    ]
    rows = alert_rows(report)
    per_alert = _table([h.capitalize() for h in ALERT_HEADERS], rows) if rows else ""
    return (
        f"<h2>Alerts and notices</h2><p>{escape(alert_sentence(report['alerts']))}</p>"
        f"<p>{escape(notice_sentence(report['notices']))}</p>{per_alert}{_table(('Measure', 'Seconds'), timing)}"
    )


RETENTION_HEADERS = ("Connection", "Policy", "Last purge", "Removed")


def retention_rows(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Per connection: its retention policy, its last purge (when, by whom) and what that purge removed."""
    rows = []
    for connection in report["connections"]:
        facts = connection.get("retention") or {}
        policy = ", ".join(f"{k.removesuffix('_days')} {v} d" for k, v in (facts.get("policy") or {}).items())
        last = facts.get("last_purge")
        when = minute(last["at"]) + " UTC by " + last["actor"] if last else "never"
        removed = ", ".join(f"{k} {v}" for k, v in last["counts"].items() if v) if last else "-"
        rows.append((connection["name"], policy, when, removed or "nothing"))
    return rows


def _retention(report: dict[str, Any]) -> str:
    """Each connection's retention policy, its last purge and what it removed; erasures in the period."""
    erased = f"<p>Erasures in the period: {int(report.get('erasures', 0))}</p>"
    return "<h2>Retention</h2>" + _table(RETENTION_HEADERS, retention_rows(report)) + erased


def render_html(report: dict[str, Any]) -> str:
    """The whole page."""
    scope = ", ".join(c["name"] for c in report["connections"])
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>regsync compliance report: {escape(scope)}</title><style>{_CSS}</style></head><body>"
        f"<h1>regsync compliance report</h1>{_facts(report)}{_notifications(report)}"
        f"<h2>Run timeline</h2>{timeline_svg(report)}{_legend()}"
        f"{_retention(report)}{_attention(report)}{_alerts(report)}</body></html>"
    )
