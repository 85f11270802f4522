"""The purge pass: delete what a connection's retention policy no longer keeps, in bounded batches.

Each batch (at most ``BATCH_ROWS`` primary keys) is its own short transaction, so a run writing at the same time
waits on a purge for one batch at most. A pass that removed anything is one audit event with the counts per
kind (never values); a dry run counts and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker.connections.apply import load_connection
from worker.ledger.audit import append_event
from worker.ledger.db import session_scope
from worker.ledger.models import Connection
from worker.retention.policy import PurgeKind, RetentionSpec
from worker.retention.targets import AGED, Target, census_since, left_crm, stale_keys

log = logging.getLogger(__name__)

#: Rows per purge transaction.
BATCH_ROWS = 5_000
#: The audit action of a purge pass.
PURGE_ACTION = "retention.purge"


@dataclass(frozen=True, slots=True)
class PurgeRequest:
    """What to purge: the kinds (all by default), an admin's age instead of the policy's, or only count."""

    kinds: frozenset[PurgeKind] = frozenset(PurgeKind)
    older_than: dt.timedelta | None = None
    dry_run: bool = False
    batch_rows: int = BATCH_ROWS


@dataclass(slots=True)
class PurgeReport:
    """What one pass over one connection removed (or would remove: ``dry_run``), per kind."""

    connection: str
    dry_run: bool
    counts: dict[str, int] = field(default_factory=dict)
    cutoffs: dict[str, str | None] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "connection": self.connection,
            "dry_run": self.dry_run,
            "counts": self.counts,
            "cutoffs": self.cutoffs,
        }


def _targets(
    session: Session, connection_id: int, policy: RetentionSpec, request: PurgeRequest, now: dt.datetime
) -> dict[PurgeKind, tuple[Target, dt.datetime | None]]:
    """The target of each requested kind, in an order where no purge cascades into a kind counted later."""
    targets: dict[PurgeKind, tuple[Target, dt.datetime | None]] = {}
    for kind in PurgeKind:
        cutoff = policy.cutoff(kind, now, request.older_than)
        if kind in request.kinds and cutoff is not None:
            targets[kind] = (AGED[kind](connection_id, cutoff), cutoff)
    census = census_since(session, connection_id)
    if census is not None:
        if PurgeKind.WRITE_HASHES in request.kinds:
            targets[PurgeKind.WRITE_HASHES] = (left_crm(connection_id, census), None)
        if PurgeKind.KEY_INDEX in request.kinds:
            targets[PurgeKind.KEY_INDEX] = (stale_keys(connection_id, census), None)
    return targets


def _count(target: Target) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(target.select.subquery())) or 0)


def _drain(target: Target, batch_rows: int) -> int:
    """Apply ``target`` batch by batch until no row is left; returns how many rows it took."""
    key = target.select.selected_columns[0]
    done = 0
    while True:
        with session_scope() as session:
            ids = list(session.scalars(target.select.order_by(key).limit(batch_rows)))
            if ids:
                target.apply(session, ids)
        done += len(ids)
        if len(ids) < batch_rows:
            return done


def purge_connection(name: str, request: PurgeRequest, actor: str, now: dt.datetime) -> PurgeReport:
    """One purge pass over the connection ``name``; audited (counts only) when it removed anything.

    Raises:
        ConnectionNotFound: No connection has that name.
    """
    with session_scope() as session:
        connection, spec = load_connection(session, name)
        targets = _targets(session, connection.id, spec.retention, request, now)
    report = PurgeReport(name, request.dry_run)
    for kind, (target, cutoff) in targets.items():
        report.cutoffs[kind.value] = None if cutoff is None else cutoff.isoformat()
        report.counts[kind.value] = _count(target) if request.dry_run else _drain(target, request.batch_rows)
    if not request.dry_run and report.total:
        _audit(name, report, actor, request)
    log.info("retention purge of %s: %d rows%s", name, report.total, " (dry run)" if request.dry_run else "")
    return report


def _audit(name: str, report: PurgeReport, actor: str, request: PurgeRequest) -> None:
    older = None if request.older_than is None else int(request.older_than.total_seconds())
    with session_scope() as session:
        append_event(
            session,
            actor=actor,
            action=PURGE_ACTION,
            target=f"connection:{name}",
            after={"counts": report.counts, "older_than_s": older},
        )


def connection_names() -> list[str]:
    with session_scope() as session:
        return list(session.scalars(select(Connection.name).order_by(Connection.name)))


def purge_all(actor: str, now: dt.datetime, names: Iterable[str] | None = None) -> dict[str, int]:
    """The beat's pass: every connection under its own policy; one bad connection does not stop the others."""
    totals: dict[str, int] = {"connections": 0, "rows": 0, "errors": 0}
    for name in names if names is not None else connection_names():
        try:
            report = purge_connection(name, PurgeRequest(), actor, now)
        except Exception:
            log.exception("retention purge of %s failed; the next pass tries again", name)
            totals["errors"] += 1
            continue
        totals["connections"] += 1
        totals["rows"] += report.total
    return totals
