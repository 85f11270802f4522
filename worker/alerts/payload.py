"""What a notice says: ids, kinds, counts, deadlines and links; never tokens, record values or registry bodies.

Every value is checked on the way out: numbers, booleans and short identifier-like strings (codes, ISO times,
kind names) pass; anything else is dropped, so a future detector cannot leak free text by accident.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from worker.alerts.models import Alert, NoticeKind

_SAFE_TEXT = re.compile(r"^[A-Za-z0-9_:.+\-]{0,64}$")
_TITLES = {
    NoticeKind.ALERT: "alert",
    NoticeKind.ESCALATION: "escalated alert",
    NoticeKind.RECOVERY: "recovered",
    NoticeKind.TEST: "test notice",
}


@dataclass(frozen=True, slots=True)
class Notice:
    """One message to send through every channel of a step; ``payload`` is the webhook's JSON body."""

    kind: NoticeKind
    event_id: str
    payload: dict[str, Any]
    subject: str
    text: str

    def body(self) -> bytes:
        """The exact bytes a webhook POSTs (and signs)."""
        return json.dumps(self.payload, sort_keys=True, separators=(",", ":")).encode("utf-8")


def safe_value(value: Any) -> Any:
    """``value`` if it is a number, boolean, None or identifier-like string; else None."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str) and _SAFE_TEXT.match(value):
        return value
    return None


def safe_details(details: dict[str, Any]) -> dict[str, Any]:
    """Details with every unsafe value dropped."""
    safe = {str(key): safe_value(value) for key, value in details.items() if _SAFE_TEXT.match(str(key))}
    return {key: value for key, value in safe.items() if value is not None or details.get(key) is None}


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def alert_summary(alert: Alert, connection: str) -> dict[str, Any]:
    """The alert as notices, the SIEM feed and the API show it."""
    return {
        "id": alert.id,
        "connection": connection,
        "connection_id": alert.connection_id,
        "kind": alert.kind,
        "subject": alert.subject,
        "status": alert.status,
        "run_id": alert.run_id,
        "detected_at": _iso(alert.detected_at),
        "opened_at": _iso(alert.opened_at),
        "notify_by": _iso(alert.notify_by),
        "notified_at": _iso(alert.notified_at),
        "acknowledged_at": _iso(alert.acknowledged_at),
        "acknowledged_by": alert.acknowledged_by,
        "escalation_level": alert.escalation_level,
        "escalate_at": _iso(alert.escalate_at),
        "resolved_at": _iso(alert.resolved_at),
        "details": safe_details(alert.details or {}),
    }


def links(public_url: str | None, alert_id: int | None, run_id: int | None) -> dict[str, str]:
    """Links into the regsync API (only when REGSYNC_PUBLIC_URL is set)."""
    if not public_url:
        return {}
    base = public_url.rstrip("/")
    found = {}
    if alert_id is not None:
        found["alert"] = f"{base}/alerts/{alert_id}"
    if run_id is not None:
        found["run"] = f"{base}/runs/{run_id}"
    return found


def _text(subject: str, summary: dict[str, Any], urls: dict[str, str]) -> str:
    lines = [subject, ""]
    for key in ("id", "connection", "kind", "subject", "status", "run_id", "detected_at", "notify_by"):
        lines.append(f"{key}: {summary.get(key)}")
    lines.append(f"escalation level: {summary.get('escalation_level')}")
    lines += [f"{key}: {value}" for key, value in sorted(summary.get("details", {}).items())]
    lines += [f"link ({name}): {url}" for name, url in urls.items()]
    lines += ["", "Acknowledge with: regsync alerts ack " + str(summary.get("id")) + " --actor YOU"]
    return "\n".join(lines) + "\n"


def build_notice(
    kind: NoticeKind, alert: Alert, connection: str, now: dt.datetime, public_url: str | None = None
) -> Notice:
    """The notice of ``kind`` for ``alert`` (alert, escalation or recovery)."""
    summary = alert_summary(alert, connection)
    urls = links(public_url, alert.id, alert.run_id)
    event_id = str(uuid.uuid4())
    payload = {
        "event": f"alert.{kind.value}",
        "event_id": event_id,
        "sent_at": now.isoformat(),
        "alert": summary,
        "links": urls,
    }
    subject = f"[regsync] {_TITLES[kind]}: {alert.kind} on {connection} (alert #{alert.id})"
    return Notice(kind, event_id, payload, subject, _text(subject, summary, urls))


def check_notice(connection: str, connection_id: int, now: dt.datetime, actor: str) -> Notice:
    """A notice that proves a channel works (`regsync alerts test`)."""
    event_id = str(uuid.uuid4())
    payload = {
        "event": "alert.test",
        "event_id": event_id,
        "sent_at": now.isoformat(),
        "connection": connection,
        "connection_id": connection_id,
        "requested_by": safe_value(actor) or "admin",
    }
    subject = f"[regsync] test notice for {connection}"
    text = (
        f"{subject}\n\nThis is a test of the alert channels of connection {connection}. No action needed.\n"
    )
    return Notice(NoticeKind.TEST, event_id, payload, subject, text)
