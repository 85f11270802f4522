"""The compliance report in words: the sentences the HTML page shares, and the whole report as plain text
(sentences and aligned tables, never a Python repr).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any


def minute(text: str) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM`` in UTC."""
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")


def _plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word if count == 1 else (many or word + 's')}"


def period_words(report: dict[str, Any]) -> str:
    period = report["period"]
    span = dt.timedelta(seconds=period["seconds"])
    length = _plural(span.days, "day") if span.days and not span.seconds else _span(span)
    return f"{minute(period['since'])} – {minute(period['until'])} UTC ({length})"


def _span(span: dt.timedelta) -> str:
    hours, rest = divmod(int(span.total_seconds()), 3600)
    return f"{hours} h {rest // 60} min" if rest else _plural(hours, "hour")


def status_words(counts: dict[str, int]) -> str:
    """``{"failed": 2, "succeeded": 1}`` as "2 failed, 1 succeeded" ("none" when empty)."""
    if not counts:
        return "none"
    return ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in counts.items())


def channel_words(notifications: dict[str, Any]) -> str:
    if notifications["status"] == "none":
        return "NONE: alerts reach no one"
    return ", ".join(f"{c['name']} ({c['type']})" for c in notifications["channels"])


def connection_warnings(report: dict[str, Any]) -> list[str]:
    """The facts an auditor must not miss: connections nobody is told about, notices waived at enable."""
    lines = []
    for c in report["connections"]:
        if c["notifications"]["status"] == "none":
            lines.append(f"{c['name']} has no notification channel: its alerts reach no one.")
        waived = c["enabled_without_notices"]
        if waived:
            lines.append(
                f"{c['name']} was enabled without notices (--without-notices) by {waived['actor']} "
                f"on {minute(waived['at'])} UTC (audit event {waived['audit_event']})."
            )
    return lines


def alert_sentence(alerts: dict[str, Any]) -> str:
    if not alerts["total"]:
        return "No alert opened in this period."
    kinds = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in alerts["by_kind"].items())
    return (
        f"{_plural(alerts['total'], 'alert')} opened ({kinds}); {alerts['unresolved']} unresolved, "
        f"{_plural(alerts['escalations'], 'escalation')}, {alerts['acknowledged']} acknowledged, "
        f"{_plural(alerts['recovery_notices'], 'recovery notice')} sent."
    )


def notice_sentence(notices: dict[str, Any]) -> str:
    pending = f" {notices['pending']} not yet due." if notices["pending"] else ""
    if not notices["due"]:
        return "No notice was due in this period." + pending
    return (
        f"{_plural(notices['due'], 'notice')} due: {notices['within_deadline']} sent within the deadline "
        f"({notices['within_deadline_pct']:g}%), {notices['late']} late, {notices['never_sent']} never sent."
        + pending
    )


def distribution_sentence(values: dict[str, Any]) -> str:
    if not values["count"]:
        return "nothing measured in this period"
    return (
        f"median {values['p50']:g} s, 95th percentile {values['p95']:g} s, longest {values['max']:g} s "
        f"(over {_plural(values['count'], 'alert')})"
    )


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell, a rule under the header; the last column is not padded."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return lines


#: The columns of the per-connection table: who is told, and what its runs did.
CONNECTION_HEADERS = ("connection", "enabled", "notification channels", "runs in the period")


def connection_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per connection in scope."""
    return [
        (
            c["name"],
            "yes" if c["enabled"] else "no",
            channel_words(c["notifications"]),
            status_words(c["runs"]),
        )
        for c in report["connections"]
    ]


#: The columns of the per-alert table: when each notice was due and when it went out.
ALERT_HEADERS = ("alert", "kind", "connection", "run", "detected", "notify by", "notified", "notice")


def alert_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per alert of the period (times in UTC, to the minute)."""
    return [
        (
            str(a["id"]),
            a["kind"],
            a["connection"],
            str(a["run_id"]) if a["run_id"] is not None else "-",
            minute(a["detected_at"]),
            minute(a["notify_by"]),
            minute(a["notified_at"]) if a["notified_at"] else "-",
            a["notice"],
        )
        for a in report["alert_list"]
    ]


def _attention_lines(report: dict[str, Any]) -> list[str]:
    rows = report["attention"]
    if not rows:
        return ["No failed, partially failed, stuck or cancelled run in this period."]
    lines = [f"Runs that need attention ({len(rows)}):"]
    for r in rows:
        ended = f"ended {minute(r['finished_at'])}" if r["finished_at"] else "not ended"
        status = r["status"].replace("_", " ")
        lines.append(
            f"  run {r['id']} of {r['connection']}: {status}, queued {minute(r['queued_at'])}, {ended}"
        )
        lines.append(f"    reason: {r['reason']}")
    return lines


def _runs_sentence(runs: dict[str, Any]) -> str:
    if not runs["total"]:
        return "No run in this period."
    return f"{_plural(runs['total'], 'run')} in this period ({mode_words(runs)}): {status_words(runs['by_status'])}."


def mode_words(runs: dict[str, Any]) -> str:
    """How many runs of each mode: "3 full, 12 changes" (every mode, zero included)."""
    return ", ".join(f"{count} {mode}" for mode, count in runs.get("by_mode", {}).items())


def render_text(report: dict[str, Any]) -> list[str]:
    """The report as lines of text."""
    chain = report["audit_chain"]
    state = (
        f"intact, {chain['checked']} events checked"
        if chain["ok"]
        else f"BROKEN at event {chain['broken_id']}"
    )
    names = ", ".join(c["name"] for c in report["connections"]) or "no connection"
    lines = [
        f"Compliance report for {names}",
        f"Period: {period_words(report)}. Generated {minute(report['generated_at'])} UTC.",
        f"Audit chain: {state}; head hash {chain['head_hash'] or 'none (no audit event yet)'}.",
        "",
    ]
    warnings = connection_warnings(report)
    lines += [*(f"WARNING: {line}" for line in warnings), *([""] if warnings else [])]
    lines += text_table(CONNECTION_HEADERS, connection_rows(report))
    lines += ["", _runs_sentence(report["runs"]), ""]
    lines += [
        *_attention_lines(report),
        "",
        alert_sentence(report["alerts"]),
        notice_sentence(report["notices"]),
    ]
    if report["alert_list"]:
        lines += ["", *text_table(ALERT_HEADERS, alert_rows(report)), ""]
    lines.append(f"Time to detect: {distribution_sentence(report['time_to_detect_s'])}.")
    lines.append(f"Time to notify: {distribution_sentence(report['time_to_notify_s'])}.")
    return lines
