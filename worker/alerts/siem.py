"""The SIEM feed: one JSON event per alert transition and per audit event, to a file and/or syslog (TCP/TLS).

A cursor row remembers the last exported ids. Exporting holds the alert-writer lock, so transitions are read
in commit order; a sink failure leaves the cursor where it was, so delivery is at-least-once (events carry
``type`` + ``id`` for de-duplication). Events carry ids, kinds, actors and changed setting *names*, never
values: audit ``before``/``after`` may hold URLs and masked secrets, and they stay in the ledger.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings, get_settings
from worker.alerts.lifecycle import serialise_writers
from worker.alerts.models import INSTALLATION, Alert, AlertTransition, FeedCursor
from worker.infra.tls import client_ssl_context
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent, Connection

FEED = "siem"
BATCH = 500
#: syslog PRI: facility 13 (log audit) × 8 + severity 6 (informational).
SYSLOG_PRI = 13 * 8 + 6


class Sink(Protocol):
    def write(self, lines: list[str]) -> None: ...


class FileSink:
    """Appends JSON lines to a file (created with mode 0600), flushed and fsynced per batch."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, lines: list[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
            handle.writelines(line + "\n" for line in lines)
            handle.flush()
            os.fsync(handle.fileno())


class SyslogSink:
    """RFC 5424 messages with RFC 5425/6587 octet-counting framing over TCP, TLS by default."""

    def __init__(self, host: str, port: int, *, tls: bool = True, timeout_s: float = 5.0) -> None:
        self.host, self.port, self.tls, self.timeout_s = host, port, tls, timeout_s

    def _frame(self, line: str) -> bytes:
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        message = f"<{SYSLOG_PRI}>1 {stamp} {socket.gethostname()} regsync - alert - {line}".encode()
        return f"{len(message)} ".encode("ascii") + message

    def write(self, lines: list[str]) -> None:
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        sock: socket.socket = raw
        if self.tls:
            sock = client_ssl_context().wrap_socket(raw, server_hostname=self.host)
        with sock:
            sock.sendall(b"".join(self._frame(line) for line in lines))


def sinks_from_settings(settings: Settings | None = None) -> list[Sink]:
    """The sinks REGSYNC_SIEM_FILE and REGSYNC_SIEM_SYSLOG name (none when neither is set)."""
    settings = settings or get_settings()
    sinks: list[Sink] = []
    if settings.siem_file is not None:
        sinks.append(FileSink(settings.siem_file))
    if settings.siem_syslog:
        host, _, port = settings.siem_syslog.rpartition(":")
        sinks.append(SyslogSink(host.strip("[]"), int(port), tls=settings.siem_syslog_tls))
    return sinks


def transition_event(transition: AlertTransition, alert: Alert, connection: str) -> dict[str, Any]:
    return {
        "type": "alert_transition",
        "id": transition.id,
        "at": transition.at.isoformat(),
        "alert_id": alert.id,
        "connection": connection,
        "kind": alert.kind,
        "subject": alert.subject,
        "run_id": alert.run_id,
        "event": transition.event,
        "from": transition.from_status,
        "to": transition.to_status,
        "escalation_level": transition.escalation_level,
        "actor": transition.actor,
        "detected_at": alert.detected_at.isoformat(),
        "notify_by": alert.notify_by.isoformat(),
    }


def audit_event(event: AuditEvent) -> dict[str, Any]:
    changed = sorted(set(event.before or {}) | set(event.after or {}))
    return {
        "type": "audit_event",
        "id": event.id,
        "at": event.at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "changed": changed,
        "hash": event.hash,
        "prev_hash": event.prev_hash,
    }


def _cursor(session: Session, now: dt.datetime) -> FeedCursor:
    cursor = session.get(FeedCursor, FEED)
    if cursor is None:
        cursor = FeedCursor(name=FEED, last_transition_id=0, last_audit_id=0, updated_at=now)
        session.add(cursor)
        session.flush()
    return cursor


def _pending(session: Session, cursor: FeedCursor) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = session.execute(
        select(AlertTransition, Alert, Connection.name)
        .join(Alert, Alert.id == AlertTransition.alert_id)
        .outerjoin(Connection, Connection.id == Alert.connection_id)  # installation-wide alerts have none
        .where(AlertTransition.id > cursor.last_transition_id)
        .order_by(AlertTransition.id)
        .limit(BATCH)
    ).all()
    audits = session.scalars(
        select(AuditEvent).where(AuditEvent.id > cursor.last_audit_id).order_by(AuditEvent.id).limit(BATCH)
    )
    transitions = [transition_event(t, a, name or INSTALLATION) for t, a, name in rows]
    return transitions, [audit_event(e) for e in audits]


def export(sinks: list[Sink], now: dt.datetime) -> int:
    """Write every not yet exported transition and audit event to each sink; returns how many events."""
    if not sinks:
        return 0
    with session_scope() as session:
        serialise_writers(session)
        cursor = _cursor(session, now)
        transitions, audits = _pending(session, cursor)
        events = sorted([*transitions, *audits], key=lambda e: (e["at"], e["type"], e["id"]))
        if not events:
            return 0
        lines = [json.dumps(event, sort_keys=True, separators=(",", ":")) for event in events]
        for sink in sinks:
            sink.write(lines)
        if transitions:
            cursor.last_transition_id = transitions[-1]["id"]
        if audits:
            cursor.last_audit_id = audits[-1]["id"]
        cursor.updated_at = now
    return len(events)
