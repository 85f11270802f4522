"""Helpers (not a test module) for alerting tests: connections and runs written straight into the ledger,
and fake channels that record every notice they are given."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.alerts.config import AlertsSpec
from worker.alerts.models import Alert, AlertTransition
from worker.alerts.payload import Notice
from worker.connections.apply import apply_connection
from worker.connections.spec import parse_spec
from worker.errors import ChannelError, ChannelRejected
from worker.ledger.db import session_scope
from worker.ledger.models import Connection, Run

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def spec_data(name: str = "acme", alerts: dict[str, Any] | None = None) -> dict[str, Any]:
    """A valid connection file's content (no server behind it) with an ``[alerts]`` table."""
    data: dict[str, Any] = {
        "name": name,
        "salesforce": {
            "token_url": "https://sf.example/services/oauth2/token",
            "client_id": "client",
            "org_number_field": "Org_Number__c",
            "country": "NO",
        },
        "registry": {"provider": "proff", "base_url": "https://registry.example"},
        "mapping": {"name": {"field": "Name"}},
    }
    if alerts is not None:
        data["alerts"] = alerts
    return data


TWO_STEP_ALERTS: dict[str, Any] = {
    "notice_period_minutes": 60,
    "channels": {
        "ops": {"type": "webhook", "url": "https://hooks.example/ops"},
        "boss": {
            "type": "email",
            "host": "smtp.example",
            "sender": "regsync@example.com",
            "to": ["b@example.com"],
        },
    },
    "escalation": [
        {"channels": ["ops"], "ack_timeout_minutes": 10},
        {"channels": ["boss"], "ack_timeout_minutes": 20},
    ],
}


def add_connection(name: str = "acme", alerts: dict[str, Any] | None = None, *, enabled: bool = False) -> int:
    with session_scope() as session:
        result = apply_connection(session, parse_spec(spec_data(name, alerts)), "test")
        session.get(Connection, result.connection_id).enabled = enabled  # type: ignore[union-attr]
        return result.connection_id


def add_run(connection_id: int, status: str, at: dt.datetime, **values: Any) -> int:
    """A run queued/started at ``at``; final statuses also finish at ``at`` unless given."""
    final = status in ("succeeded", "partially_failed", "failed", "cancelled", "skipped")
    fields: dict[str, Any] = {
        "connection_id": connection_id,
        "kind": "manual",
        "status": status,
        "triggered_by": "test",
        "options": {},
        "queued_at": at,
        "started_at": at if status != "queued" else None,
        "finished_at": at if final else None,
        "heartbeat_at": at if status != "queued" else None,
    }
    fields.update(values)
    with session_scope() as session:
        run = Run(**fields)
        session.add(run)
        session.flush()
        return run.id


def update_run(run_id: int, **values: Any) -> None:
    with session_scope() as session:
        run = session.get(Run, run_id)
        assert run is not None
        for key, value in values.items():
            setattr(run, key, value)


def alerts(session: Session | None = None) -> list[Alert]:
    with session_scope() as own:
        return list((session or own).scalars(select(Alert).order_by(Alert.id)))


def transitions(alert_id: int) -> list[tuple[str, str | None, str, int]]:
    with session_scope() as session:
        rows = session.scalars(
            select(AlertTransition).where(AlertTransition.alert_id == alert_id).order_by(AlertTransition.id)
        )
        return [(t.event, t.from_status, t.to_status, t.escalation_level) for t in rows]


@dataclass
class FakeChannel:
    """Records notices; ``fail`` makes it raise ``ChannelError`` (transient) or ``ChannelRejected``."""

    name: str
    sent: list[Notice] = field(default_factory=list)
    fail: str | None = None

    def send(self, notice: Notice) -> None:
        if self.fail == "transient":
            raise ChannelError(f"{self.name} down")
        if self.fail == "permanent":
            raise ChannelRejected(f"{self.name} answered HTTP 410")
        self.sent.append(notice)


@dataclass
class FakeChannels:
    """A channel factory for ``evaluate``: the same FakeChannel per configured name, every time."""

    channels: dict[str, FakeChannel] = field(default_factory=dict)

    def __call__(self, session: Session, connection_id: int, settings: AlertsSpec) -> dict[str, Any]:
        for name in settings.channels:
            self.channels.setdefault(name, FakeChannel(name))
        return {name: self.channels[name] for name in settings.channels}

    def channel(self, name: str) -> FakeChannel:
        """The fake behind ``name`` (created now if no evaluation built it yet)."""
        return self.channels.setdefault(name, FakeChannel(name))

    def sent(self, name: str) -> list[Notice]:
        return self.channels[name].sent if name in self.channels else []

    def kinds(self, name: str) -> list[tuple[str, str]]:
        """(notice kind, alert kind) of each notice a channel got."""
        return [(n.kind.value, n.payload["alert"]["kind"]) for n in self.sent(name)]


ALERTS_ONE_CHANNEL: dict[str, Any] = {
    "notice_period_minutes": 60,
    "channels": {"ops": {"type": "webhook", "url": "https://hooks.example/ops"}},
}
