"""The registry pump's rows in the ledger: its claim (lease + token) on the run, its cursor, and the chunks ahead.

A pump claims its run like a planner does (compare-and-set on ``pump_attempts``, the token, with a lease); its
heartbeat extends the lease, moves ``pump_seq`` (the next chunk seq it has not finished) and reports the registry
calls it sent so far. A pump whose lease ran out is resumed by the sweeper from ``pump_seq``.

Calls are reported as the attempt's running total, and ``pump_reported`` keeps the part already in the run's
``registry_calls``; a report adds only what goes beyond it. So a dead pump's last calls, which its send tally holds
(worker.sync.send_tally), are added by whoever takes its run over (:func:`claim`) or closes the run
(:func:`charge_lost`); either *retires* that attempt (worker.sync.send_tally.retire), so a pump that was only slow
sends nothing more, and its later report counts nothing twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, case, func, select, update
from sqlalchemy.orm import Session

from worker.company import CompanyKey
from worker.infra.shared_state import row_tag
from worker.ledger.db import session_scope, updated_one
from worker.ledger.models import Chunk, ChunkStatus, Run, RunStatus, utcnow
from worker.sync.send_tally import retire_pump

if TYPE_CHECKING:
    from config.settings import Settings

#: Longest time a pump's claim holds without a heartbeat (it beats several times a second); never longer than a
#: chunk's lease (``chunk_lease_s``), so that a dead pump is resumed no later than a dead chunk.
PUMP_LEASE_S = 30.0


def lease_s() -> float:
    return min(PUMP_LEASE_S, float(_settings().chunk_lease_s))


_OPEN_CHUNK = (ChunkStatus.QUEUED.value, ChunkStatus.RUNNING.value)


@dataclass(frozen=True, slots=True)
class PumpClaim:
    run_id: int
    attempt: int  # the pump's token: every write checks it
    connection_id: int
    run_tag: str
    seq: int  # the first chunk seq still to fetch


@dataclass(frozen=True, slots=True)
class RunState:
    """What the pump's heartbeat read back: go on, or stop (and why)."""

    mine: bool
    stop: str | None  # "cancelled", "paused", "ended", "lost" (another pump took over), or None: go on
    planned_complete: bool


def _claimable(run_id: int, now: dt.datetime) -> ColumnElement[bool]:
    return (
        (Run.id == run_id)
        & (Run.status == RunStatus.RUNNING.value)
        & Run.pump_done.is_(False)
        & Run.cancel_requested.is_(False)
        & (Run.pump_lease_until.is_(None) | (Run.pump_lease_until < now))
    )


def claim(run_id: int, max_attempts: int, *, resume_only: bool = False) -> PumpClaim | None:
    """Take run ``run_id``'s pump (nobody holds it, or its holder's lease ran out); None if not now.

    Args:
        resume_only: only a pump that ran before and was lost (a chunk's check, worker.sync.pump.resume_if_lost).
    """
    now = utcnow()
    with session_scope() as session:
        before = session.execute(
            select(Run.pump_attempts, Run.queued_at).where(Run.id == run_id)
        ).one_or_none()
        if (
            before is None
            or before.pump_attempts >= max_attempts
            or (resume_only and before.pump_attempts == 0)
        ):
            return None
        dead = before.pump_attempts  # the attempt this claim takes over (0: none)
        won = session.execute(
            update(Run)
            .where(_claimable(run_id, now), Run.pump_attempts == dead)
            .values(pump_lease_until=now + dt.timedelta(seconds=lease_s()), pump_attempts=dead + 1)
        )
        if not updated_one(won):
            return None
        # Won (the row is locked till commit): only now retire the attempt taken over, never a pump still leased.
        sent = retire_pump(_settings(), row_tag(run_id, before.queued_at), dead)
        session.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(registry_calls=Run.registry_calls + _beyond_reported(sent), pump_reported=0)
        )
        run = session.execute(select(Run).where(Run.id == run_id)).scalar_one()
        return PumpClaim(
            run.id, run.pump_attempts, run.connection_id, row_tag(run.id, run.queued_at), run.pump_seq
        )


def _settings() -> Settings:
    from config.settings import get_settings

    return get_settings()


def _beyond_reported(total: int) -> ColumnElement[int]:
    """The part of an attempt's running total of calls not yet in the run's count."""
    return case((Run.pump_reported < total, total - Run.pump_reported), else_=0)


def _reported(total: int) -> dict[str, object]:
    """UPDATE values that bring the run's count up to an attempt's running total of calls (never down)."""
    return {
        "registry_calls": Run.registry_calls + _beyond_reported(total),
        "pump_reported": case((Run.pump_reported < total, total), else_=Run.pump_reported),
    }


def charge_lost(session: Session, run_id: int, run_tag: str) -> int:
    """As a run closes: add what its current pump sent beyond its last report (a pump killed since); returns it.

    It retires that attempt (the run is closed anyway): a pump still at work sends nothing more, and its last report
    adds nothing beyond this.
    """
    attempt, reported = session.execute(
        select(Run.pump_attempts, Run.pump_reported).where(Run.id == run_id)
    ).one()
    sent = retire_pump(_settings(), run_tag, attempt)
    if sent <= reported:
        return 0
    session.execute(
        update(Run).where(Run.id == run_id, Run.pump_attempts == attempt).values(**_reported(sent))
    )
    return sent - reported


def _is_mine(claim: PumpClaim) -> ColumnElement[bool]:
    return (Run.id == claim.run_id) & (Run.pump_attempts == claim.attempt)


def beat(claim: PumpClaim, seq: int, calls: int) -> RunState:
    """Extend the lease, store the cursor and report ``calls``, the attempt's total so far; read whether to stop."""
    now = utcnow()
    with session_scope() as session:
        row = session.execute(
            select(Run.status, Run.cancel_requested, Run.error_code, Run.planned_complete, Run.pump_attempts)
            .where(Run.id == claim.run_id)
            .with_for_update()
        ).one()
        if row.pump_attempts != claim.attempt:
            return RunState(False, "lost", bool(row.planned_complete))
        values: dict[str, object] = {"pump_seq": seq, **_reported(calls)}
        stop = _stop_reason(row.status, bool(row.cancel_requested), row.error_code)
        if stop is None:  # a stopping pump keeps its lease until its requests ended (release)
            values["pump_lease_until"] = now + dt.timedelta(seconds=lease_s())
        session.execute(update(Run).where(_is_mine(claim)).values(**values))
    return RunState(True, stop, bool(row.planned_complete))


def _stop_reason(status: str, cancel_requested: bool, error_code: str | None) -> str | None:
    if cancel_requested:
        return "cancelled"
    if status == RunStatus.PAUSED_BUDGET.value:
        return "paused"  # released once its requests ended: the sweeper sends it again when the run resumes
    if status != RunStatus.RUNNING.value or error_code:
        return "ended"
    return None


def release(claim: PumpClaim, seq: int, calls: int) -> None:
    """The pump stopped (told to, or on an error) and its requests ended: report its calls and let its lease run
    out now (the sweeper resends it if the run still needs it)."""
    with session_scope() as session:
        session.execute(
            update(Run)
            .where(_is_mine(claim))
            .values(pump_seq=seq, pump_lease_until=utcnow(), **_reported(calls))
        )


def finish(claim: PumpClaim, seq: int, calls: int) -> None:
    """Every planned chunk is fetched: the pump is done for this run (never sent again)."""
    with session_scope() as session:
        session.execute(
            update(Run)
            .where(_is_mine(claim))
            .values(pump_seq=seq, pump_done=True, pump_lease_until=None, **_reported(calls))
        )


@dataclass(frozen=True, slots=True)
class Ahead:
    """The chunks a pump may fetch now."""

    total: int  # chunks planned so far
    start: int  # the first seq that may still need the pump (every open chunk is at or after it)
    chunks: list[tuple[int, list[CompanyKey]]]  # open chunks from ``start``, within the window, in seq order


def chunks_ahead(claim: PumpClaim, seq: int, window: int) -> Ahead:
    """The open chunks from ``seq`` that lie within ``window`` chunks of the first open chunk.

    Open: queued or running. A finished chunk needs nothing; a chunk planned before the pump existed has no keys.
    """
    with session_scope() as session:
        total, first_open = session.execute(
            select(
                select(Run.chunks_total).where(Run.id == claim.run_id).scalar_subquery(),
                select(func.min(Chunk.seq))
                .where(Chunk.run_id == claim.run_id, Chunk.status.in_(_OPEN_CHUNK))
                .scalar_subquery(),
            )
        ).one()
        total = int(total or 0)
        floor = first_open if first_open is not None else max(seq, total)  # none open: all done so far
        start = max(seq, floor)
        rows = session.execute(
            select(Chunk.seq, Chunk.org_keys)
            .where(
                Chunk.run_id == claim.run_id,
                Chunk.seq >= start,
                Chunk.seq < floor + window,
                Chunk.status.in_(_OPEN_CHUNK),
            )
            .order_by(Chunk.seq)
        ).all()
    return Ahead(total, start, [(s, parse_keys(keys or [])) for s, keys in rows])


def parse_keys(fields: Sequence[str]) -> list[CompanyKey]:
    """``CC:orgnr`` strings (worker.sync.company_cache.field_of) back to keys."""
    return [CompanyKey(*field.split(":", 1)) for field in fields]
