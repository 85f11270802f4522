"""Sending the notices of one alert: first notice, escalation, recovery. Claim, send, settle.

Each step first *claims* the alert with a compare-and-set that also pushes its deadline a lease ahead, so two
evaluators never send the same notice and a crash mid-send is retried after the lease. Sending happens
outside any transaction; the outcome (deliveries, transition, next deadline) is written afterwards.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import Executable, update
from sqlalchemy.orm import Session

from worker.alerts import lifecycle
from worker.alerts.channels import Channel, ChannelFactory
from worker.alerts.config import AlertsSpec
from worker.alerts.detectors import Condition
from worker.alerts.escalation import channels_through, next_escalation, step_for
from worker.alerts.models import INSTALLATION, Alert, AlertDelivery, AlertKind, AlertStatus, NoticeKind
from worker.alerts.operator import operator_alerts, operator_channels
from worker.alerts.payload import Notice, build_notice
from worker.alerts.snapshot import alert_settings
from worker.errors import ChannelError, ChannelRejected
from worker.ledger.db import session_scope, updated_one
from worker.ledger.models import Connection

log = logging.getLogger(__name__)

CLAIM_LEASE = dt.timedelta(minutes=2)
#: An alert of a connection without channels is looked at again after this long (channels may be added).
NO_CHANNEL_RECHECK = dt.timedelta(minutes=5)
ESCALATION_RETRY = dt.timedelta(minutes=1)
#: The time after a send (the real clock in production; the frozen one in tests).
Clock = Callable[[], dt.datetime]


class NoticeOutcome(StrEnum):
    """What ``notify``, ``escalate`` or ``recover`` did with one alert (the evaluator tallies them)."""

    #: The first notice went out on at least one channel; the alert is notified.
    NOTIFIED = "notified"
    #: The next step of the escalation policy was notified.
    ESCALATED = "escalated"
    #: The recovery notice went out (or the alert had no channel left to tell).
    RECOVERED = "recovered"
    #: No channel took the notice; it is retried with backoff.
    FAILED = "failed"
    #: Another pass took the alert, or it is not due (any more): nothing was sent.
    NOT_CLAIMED = "not_claimed"
    #: The connection has no alert channel: looked at again after ``NO_CHANNEL_RECHECK``.
    NO_CHANNELS = "no_channels"
    #: The escalation policy changed and has no further step: nothing more to escalate to.
    POLICY_EXHAUSTED = "policy_exhausted"


@dataclass(slots=True)
class Delivery:
    """What happened to one notice on each channel."""

    ok: list[str] = field(default_factory=list)
    transient: dict[str, str] = field(default_factory=dict)
    permanent: dict[str, str] = field(default_factory=dict)

    @property
    def delivered(self) -> bool:
        return bool(self.ok)

    def summary(self) -> str:
        problems = {**self.transient, **self.permanent}
        return "; ".join(f"{name}: {reason}" for name, reason in sorted(problems.items()))[:1000]


def backoff(attempts: int) -> dt.timedelta:
    """Pause before the next attempt at a notice: 30 s doubling, at most 30 minutes."""
    return dt.timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 1800))


def send_all(channels: dict[str, Channel], names: list[str], notice: Notice) -> Delivery:
    """Send ``notice`` through each named channel; one channel's failure never stops the others."""
    result = Delivery()
    for name in names:
        channel = channels.get(name)
        try:
            if channel is None:
                raise ChannelRejected(f"channel {name} is not configured")
            channel.send(notice)
        except ChannelRejected as exc:
            result.permanent[name] = exc.message
        except ChannelError as exc:
            result.transient[name] = exc.message
        except Exception as exc:  # a channel bug counts as a transient failure of that channel
            log.exception("channel %s failed unexpectedly", name)
            result.transient[name] = f"unexpected {type(exc).__name__}"
        else:
            result.ok.append(name)
    return result


@dataclass(frozen=True, slots=True)
class Context:
    """An alert with what it takes to notify about it."""

    alert: Alert
    connection: str
    settings: AlertsSpec
    channels: dict[str, Channel]


def load_context(alert_id: int, factory: ChannelFactory) -> Context:
    with session_scope() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        if alert.connection_id is None:  # an installation-wide alert: the operator's channels
            operator = operator_alerts()
            return Context(alert, INSTALLATION, operator.spec, operator_channels(operator))
        connection = session.get(Connection, alert.connection_id)
        assert connection is not None
        settings = alert_settings(connection.spec)
        return Context(alert, connection.name, settings, factory(session, connection.id, settings))


def _claim(statement: Executable) -> bool:
    """Run a compare-and-set UPDATE in its own transaction; True when it took exactly this alert."""
    with session_scope() as session:
        return updated_one(session.execute(statement))


Settle = Callable[[Session, Delivery, dt.datetime], None]


def _send_and_record(
    ctx: Context,
    kind: NoticeKind,
    names: list[str],
    notice: Notice,
    *,
    sent_at: Clock,
    settle: Settle,
) -> Delivery:
    """Send ``notice`` to ``names``, then in one transaction: the deliveries, ``settle``, channel health."""
    result = send_all(ctx.channels, names, notice)
    sent = sent_at()
    with session_scope() as session:
        lifecycle.serialise_writers(session)
        record_deliveries(session, ctx, kind, result, sent)
        settle(session, result, sent)
        channel_health(session, ctx, result, sent)
    return result


def record_deliveries(
    session: Session, ctx: Context, kind: NoticeKind, result: Delivery, now: dt.datetime
) -> None:
    failed = {**result.transient, **result.permanent}
    for name in [*result.ok, *failed]:
        session.add(
            AlertDelivery(
                alert_id=ctx.alert.id if kind != NoticeKind.TEST else None,
                connection_id=ctx.alert.connection_id,
                channel=name,
                notice=kind.value,
                at=now,
                ok=name in result.ok,
                error=failed.get(name),
            )
        )


def channel_health(session: Session, ctx: Context, result: Delivery, now: dt.datetime) -> None:
    """Open a channel_failing alert per permanently failing channel; resolve it once the channel works."""
    notice = dt.timedelta(minutes=ctx.settings.notice_period_minutes)
    for name in result.permanent:
        condition = Condition(
            ctx.alert.connection_id, AlertKind.CHANNEL_FAILING, name, now, None, {"channel": name}
        )
        if lifecycle.open_alert(session, condition, notice, now) is not None:
            log.error("alert channel failing", extra={"channel": name, "connection": ctx.connection})
    failing = lifecycle.unresolved(session, ctx.alert.connection_id, [AlertKind.CHANNEL_FAILING.value])
    for alert in failing:
        if alert.subject in result.ok:
            lifecycle.resolve(session, alert.id, now)


def _targets(ctx: Context, names: list[str]) -> list[str]:
    """A channel_failing alert is not sent to the failing channel itself (it would only fail again)."""
    if ctx.alert.kind != AlertKind.CHANNEL_FAILING.value:
        return names
    others = [name for name in names if name != ctx.alert.subject]
    return others or [name for name in sorted(ctx.settings.channels) if name != ctx.alert.subject]


def notify(
    alert_id: int,
    now: dt.datetime,
    factory: ChannelFactory,
    public_url: str | None,
    *,
    clock: Clock | None = None,
) -> NoticeOutcome:
    """Send the first notice of an open alert (step 1 of its policy); returns what happened."""
    claim = (
        update(Alert)
        .where(Alert.id == alert_id, Alert.status == AlertStatus.OPEN.value)
        .where(Alert.retry_at.is_(None) | (Alert.retry_at <= now))
        .values(retry_at=now + CLAIM_LEASE, attempts=Alert.attempts + 1)
    )
    if not _claim(claim):
        return NoticeOutcome.NOT_CLAIMED
    ctx = load_context(alert_id, factory)
    step = step_for(ctx.settings, 0)
    names = _targets(ctx, step.channels if step else [])
    if not names:
        owner = "REGSYNC_OPERATOR_ALERTS_FILE" if ctx.alert.connection_id is None else "this connection"
        _postpone(alert_id, now + NO_CHANNEL_RECHECK, f"no alert channels configured for {owner}")
        return NoticeOutcome.NO_CHANNELS

    def settle(session: Session, result: Delivery, sent: dt.datetime) -> None:
        if result.delivered:
            lifecycle.mark_notified(session, alert_id, sent, next_escalation(ctx.settings, 0, sent))
        else:
            _set_retry(session, alert_id, sent + backoff(ctx.alert.attempts + 1), result.summary())

    notice = build_notice(NoticeKind.ALERT, ctx.alert, ctx.connection, now, public_url)
    result = _send_and_record(
        ctx, NoticeKind.ALERT, names, notice, sent_at=clock or (lambda: now), settle=settle
    )
    return NoticeOutcome.NOTIFIED if result.delivered else NoticeOutcome.FAILED


def escalate(
    alert_id: int,
    level: int,
    now: dt.datetime,
    factory: ChannelFactory,
    public_url: str | None,
    *,
    clock: Clock | None = None,
) -> NoticeOutcome:
    """Notify the next step of an unacknowledged alert whose ``escalate_at`` has passed."""
    claim = (
        update(Alert)
        .where(Alert.id == alert_id, Alert.status == AlertStatus.NOTIFIED.value)
        .where(Alert.escalation_level == level, Alert.escalate_at <= now)
        .values(escalate_at=now + CLAIM_LEASE)
    )
    if not _claim(claim):
        return NoticeOutcome.NOT_CLAIMED
    ctx = load_context(alert_id, factory)
    step = step_for(ctx.settings, level + 1)
    if step is None:  # the policy changed since: nothing more to escalate to
        with session_scope() as session:
            session.execute(update(Alert).where(Alert.id == alert_id).values(escalate_at=None))
        return NoticeOutcome.POLICY_EXHAUSTED
    ctx.alert.escalation_level = level + 1  # the notice shows the level it is sent at

    def settle(session: Session, result: Delivery, sent: dt.datetime) -> None:
        if result.delivered:
            next_at = next_escalation(ctx.settings, level + 1, sent)
            lifecycle.mark_escalated(session, alert_id, level, sent, next_at)
        else:
            session.execute(
                update(Alert)
                .where(Alert.id == alert_id, Alert.status == AlertStatus.NOTIFIED.value)
                .values(escalate_at=sent + ESCALATION_RETRY, last_error=result.summary())
            )

    notice = build_notice(NoticeKind.ESCALATION, ctx.alert, ctx.connection, now, public_url)
    names = _targets(ctx, step.channels)
    result = _send_and_record(
        ctx, NoticeKind.ESCALATION, names, notice, sent_at=clock or (lambda: now), settle=settle
    )
    return NoticeOutcome.ESCALATED if result.delivered else NoticeOutcome.FAILED


def recover(
    alert_id: int,
    now: dt.datetime,
    factory: ChannelFactory,
    public_url: str | None,
    *,
    clock: Clock | None = None,
) -> NoticeOutcome:
    """Send the one recovery notice of a resolved alert that had been notified."""
    claim = (
        update(Alert)
        .where(Alert.id == alert_id, Alert.status == AlertStatus.RESOLVED.value)
        .where(Alert.notified_at.is_not(None), Alert.recovery_sent_at.is_(None))
        .where(Alert.retry_at.is_(None) | (Alert.retry_at <= now))
        .values(recovery_sent_at=now, attempts=Alert.attempts + 1)
    )
    if not _claim(claim):
        return NoticeOutcome.NOT_CLAIMED
    ctx = load_context(alert_id, factory)
    names = _targets(ctx, channels_through(ctx.settings, ctx.alert.escalation_level))
    notice = build_notice(NoticeKind.RECOVERY, ctx.alert, ctx.connection, now, public_url)

    def settle(session: Session, result: Delivery, sent: dt.datetime) -> None:
        if not result.delivered and names:
            retry_at = sent + backoff(ctx.alert.attempts)
            session.execute(
                update(Alert)
                .where(Alert.id == alert_id)
                .values(recovery_sent_at=None, retry_at=retry_at, last_error=result.summary())
            )

    result = _send_and_record(
        ctx, NoticeKind.RECOVERY, names, notice, sent_at=clock or (lambda: now), settle=settle
    )
    return NoticeOutcome.RECOVERED if result.delivered or not names else NoticeOutcome.FAILED


def _set_retry(session: Session, alert_id: int, at: dt.datetime, error: str) -> None:
    session.execute(update(Alert).where(Alert.id == alert_id).values(retry_at=at, last_error=error[:1000]))


def _postpone(alert_id: int, at: dt.datetime, error: str) -> None:
    with session_scope() as session:
        _set_retry(session, alert_id, at, error)


def push_deadlines(alert_id: int, now: dt.datetime, error: str) -> None:
    """After an unexpected failure on one alert: move its deadlines forward so the loop goes on without it."""
    later = now + backoff(4)
    with session_scope() as session:
        session.execute(
            update(Alert).where(Alert.id == alert_id).values(retry_at=later, last_error=error[:1000])
        )
        session.execute(
            update(Alert)
            .where(
                Alert.id == alert_id,
                Alert.status == AlertStatus.NOTIFIED.value,
                Alert.escalate_at.is_not(None),
            )
            .values(escalate_at=later)
        )
