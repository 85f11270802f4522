"""Status digests: ONE notice per changes run listing the companies that became bankrupt, dissolved or deleted.

Credit and sales teams want to hear of these at once. After a changes run closes (the run-closed hook:
``regsync.alerts_evaluate`` with the run's id), ``send_digest`` looks at what the run's chunks recorded:

- a record *became* something in this run when the run holds a ``status`` change event for it that was
  written or sent to review (``synced``/``review``/``approved``), or a feed item said the company was deleted
  or removed (change type ``deleted``/``removed``);
- what it became is the registry notice of its row in ``record_failures`` (the ``registry_deleted`` /
  ``registry_inactive`` counters' rows): ``REGISTRY_DELETED`` is *deleted*; ``REGISTRY_INACTIVE`` carries the
  status word (worker.registry.outcomes), *bankrupt*, *dissolved* (dissolved or in liquidation) or *inactive*
  (Proff only says inactive).

The notice carries counts and record Ids only, never values or org numbers, and goes to the channels of the
connection's first escalation step (every channel without a policy), like an alert's first notice. It is
claimed before it is sent (an audit event ``changes.digest`` on the run, under the run's row lock), so a
redelivered hook never sends a second one; a send that fails on every channel is logged, not retried.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from worker.alerts.channels import Channel, ChannelFactory, build_channels
from worker.alerts.config import AlertsSpec
from worker.alerts.escalation import channels_through
from worker.alerts.models import NoticeKind
from worker.alerts.notify import send_all
from worker.alerts.payload import Notice, links
from worker.changes.models import ChangeEvent, ChangeOutcome, ChangeType
from worker.ledger.audit import append_event
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent, Connection, RecordFailure, Run, RunMode, utcnow
from worker.registry.outcomes import RegistryNotice

log = logging.getLogger(__name__)

#: The digest's categories, in the order notices list them.
CATEGORIES = ("bankrupt", "dissolved", "deleted", "inactive")
#: At most this many record Ids per category in one notice (the counts are always complete).
MAX_IDS = 1000
AUDIT_ACTION = "changes.digest"
#: A status change that reached the CRM or a person.
_STATUS_SEEN = (ChangeOutcome.SYNCED.value, ChangeOutcome.REVIEW.value, ChangeOutcome.APPROVED.value)
_GONE = (ChangeType.DELETED.value, ChangeType.REMOVED.value)
_WORD = re.compile(r"\((\w+)\)")
_CATEGORY_OF_WORD = {"bankrupt": "bankrupt", "dissolved": "dissolved", "liquidation": "dissolved"}


@dataclass(slots=True)
class Digest:
    """The records of one run per category (sorted record Ids)."""

    run_id: int
    connection_id: int
    records: dict[str, list[str]] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        return {category: len(self.records.get(category, [])) for category in CATEGORIES}

    @property
    def empty(self) -> bool:
        return not any(self.records.values())


def category(failure: RecordFailure) -> str | None:
    """What a notice row says the company became; None for a row that is not a deleted/inactive notice."""
    if failure.error_code == RegistryNotice.DELETED.value:
        return "deleted"
    if failure.error_code != RegistryNotice.INACTIVE.value:
        return None
    word = _WORD.search(failure.message or "")
    return _CATEGORY_OF_WORD.get(word.group(1) if word else "", "inactive")


def collect(session: Session, run: Run) -> Digest:
    """The digest of ``run``: its records that became bankrupt, dissolved, deleted or inactive."""
    became = select(ChangeEvent.record_id).where(
        ChangeEvent.run_id == run.id,
        ChangeEvent.record_id.is_not(None),
        or_(
            (ChangeEvent.field == "status") & ChangeEvent.outcome.in_(_STATUS_SEEN),
            ChangeEvent.change_type.in_(_GONE),
        ),
    )
    notices = select(RecordFailure).where(
        RecordFailure.run_id == run.id,
        RecordFailure.error_code.in_((RegistryNotice.DELETED.value, RegistryNotice.INACTIVE.value)),
        RecordFailure.record_id.in_(became),
    )
    grouped: dict[str, set[str]] = defaultdict(set)
    for failure in session.scalars(notices):
        kind = category(failure)
        if kind is not None:
            grouped[kind].add(failure.record_id)
    records = {kind: sorted(grouped[kind]) for kind in CATEGORIES if grouped[kind]}
    return Digest(run.id, run.connection_id, records)


def build_digest_notice(digest: Digest, connection: str, now: dt.datetime, public_url: str | None) -> Notice:
    """The notice: counts and record Ids (at most ``MAX_IDS`` per category), never values."""
    event_id = str(uuid.uuid4())
    counts = digest.counts
    payload: dict[str, Any] = {
        "event": "changes.status_digest",
        "event_id": event_id,
        "sent_at": now.isoformat(),
        "connection": connection,
        "connection_id": digest.connection_id,
        "run_id": digest.run_id,
        "counts": counts,
        "records": {kind: ids[:MAX_IDS] for kind, ids in digest.records.items()},
        "truncated": any(len(ids) > MAX_IDS for ids in digest.records.values()),
        "links": links(public_url, None, digest.run_id),
    }
    said = ", ".join(f"{counts[kind]} {kind}" for kind in CATEGORIES if counts[kind])
    subject = f"[regsync] status digest: {said} on {connection} (run #{digest.run_id})"
    lines = [subject, "", f"connection: {connection}", f"run: {digest.run_id}"]
    for kind, ids in digest.records.items():
        lines.append(f"{kind} ({counts[kind]}): {', '.join(ids[:MAX_IDS])}")
    lines += [f"link ({name}): {url}" for name, url in payload["links"].items()]
    # Sent through the alert channels like an alert's first notice; the payload's ``event`` says what it is.
    return Notice(NoticeKind.ALERT, event_id, payload, subject, "\n".join(lines) + "\n")


def _claim(session: Session, run: Run, digest: Digest) -> bool:
    """Record (audited) that this run's digest is being sent; False when a digest of the run was claimed."""
    target = f"run:{run.id}"
    done = select(AuditEvent.id).where(AuditEvent.action == AUDIT_ACTION, AuditEvent.target == target)
    if session.scalar(done.limit(1)) is not None:
        return False
    append_event(
        session, actor="regsync", action=AUDIT_ACTION, target=target, after={"counts": digest.counts}
    )
    return True


_Prepared = tuple[Notice, dict[str, Channel], list[str]]


def _prepare(run_id: int, factory: ChannelFactory | None, now: dt.datetime) -> _Prepared | None:
    from config.settings import get_settings

    with session_scope() as session:
        run = session.scalar(select(Run).where(Run.id == run_id).with_for_update())
        if run is None or run.mode != RunMode.CHANGES.value or run.finished_at is None:
            return None
        digest = collect(session, run)
        connection = session.get_one(Connection, run.connection_id)
        settings = AlertsSpec.model_validate((connection.spec or {}).get("alerts") or {})
        names = channels_through(settings, 0)
        if digest.empty or not names:  # nothing to say, or nobody to tell (the demo's connection)
            return None
        if not _claim(session, run, digest):
            return None
        channels = (factory or build_channels)(session, connection.id, settings)
        notice = build_digest_notice(digest, connection.name, now, get_settings().public_url)
    return notice, channels, names


def send_digest(
    run_id: int, *, factory: ChannelFactory | None = None, now: dt.datetime | None = None
) -> bool:
    """Send run ``run_id``'s status digest once, if it is a closed changes run with anything to say.

    Returns:
        True when this call sent it (on at least one channel).
    """
    prepared = _prepare(run_id, factory, now or utcnow())
    if prepared is None:
        return False
    notice, channels, names = prepared
    result = send_all(channels, names, notice)
    if not result.delivered:
        log.warning("status digest not delivered", extra={"run_id": run_id, "problems": result.summary()})
    return result.delivered
