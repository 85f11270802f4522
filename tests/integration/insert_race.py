"""Turns concurrent ticks into a real race for one slot's run, and records it (a test helper, not a test module).

:func:`race_run_inserts` hooks every SQLAlchemy engine of the process: an ``INSERT INTO runs`` of a scheduled
slot waits at a gate until every racer (thread or process) has reached its own insert of that same slot, then
all of them send it at once. PostgreSQL's unique (connection_id, scheduled_for) index decides: one insert
succeeds, the others wait for its commit and fail with SQLSTATE 23505 on ``uq_runs_connection_id``. Each
racer's attempt and outcome is recorded as an :class:`InsertAttempt`, so a test can show that the racers
really collided instead of taking turns.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from sqlalchemy import Engine, event

UNIQUE_VIOLATION = "23505"
RUNS_SLOT_CONSTRAINT = "uq_runs_connection_id"
GATE_TIMEOUT_S = 10.0


@dataclass
class InsertAttempt:
    """One racer's insert of one slot's run: when it arrived and was let go, and what PostgreSQL said."""

    racer: str
    slot: str
    arrived_at: float
    sent_at: float
    gate_complete: bool = False
    outcome: str = "pending"  # "inserted" or "refused"
    sqlstate: str | None = None
    constraint: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Gate(Protocol):
    def wait(self, slot: str) -> bool:
        """Block until every racer reached ``slot`` (True), or give up after the timeout (False)."""
        ...


class ThreadGate:
    """Racers are threads of this process: one :class:`threading.Barrier` per slot."""

    def __init__(self, racers: int, timeout_s: float = GATE_TIMEOUT_S) -> None:
        self._racers, self._timeout_s = racers, timeout_s
        self._barriers: dict[str, threading.Barrier] = {}
        self._lock = threading.Lock()

    def wait(self, slot: str) -> bool:
        with self._lock:
            barrier = self._barriers.setdefault(slot, threading.Barrier(self._racers))
        try:
            barrier.wait(self._timeout_s)
        except threading.BrokenBarrierError:
            return False
        return True


class RedisGate:
    """Racers are processes: each counts itself in at a per-slot Redis key, then polls until all are in."""

    def __init__(self, redis_url: str, racers: int, timeout_s: float = GATE_TIMEOUT_S) -> None:
        import redis

        self._client = redis.Redis.from_url(redis_url)
        self._racers, self._timeout_s = racers, timeout_s

    def wait(self, slot: str) -> bool:
        key = f"regsync-test:insert-race:{slot}"
        self._client.incr(key)
        self._client.expire(key, 600)
        deadline = time.monotonic() + self._timeout_s
        while time.monotonic() < deadline:
            if int(self._client.get(key) or 0) >= self._racers:
                return True
            time.sleep(0.001)
        return False


class _Race:
    def __init__(self, gate: Gate, racer: str) -> None:
        self.gate, self.racer = gate, racer
        self.attempts: list[InsertAttempt] = []
        self._current = threading.local()

    def before(self, *args: Any) -> None:
        """``before_cursor_execute(conn, cursor, statement, parameters, context, executemany)``."""
        statement, parameters = args[2], args[3]
        slot = parameters.get("scheduled_for") if isinstance(parameters, dict) else None
        if not statement.lstrip().upper().startswith("INSERT INTO RUNS") or slot is None:
            self._current.attempt = None
            return
        arrived = time.time()
        complete = self.gate.wait(slot.isoformat())
        name = f"{self.racer}/{threading.current_thread().name}"
        attempt = InsertAttempt(name, slot.isoformat(), arrived, time.time(), complete)
        self.attempts.append(attempt)
        self._current.attempt = attempt

    def after(self, *_: Any) -> None:
        attempt = getattr(self._current, "attempt", None)
        if attempt is not None:
            attempt.outcome = "inserted"
            self._current.attempt = None

    def failed(self, context: Any) -> None:
        attempt = getattr(self._current, "attempt", None)
        if attempt is None:
            return
        error = context.original_exception
        attempt.outcome = "refused"
        attempt.sqlstate = getattr(error, "sqlstate", None)
        diag = getattr(error, "diag", None)
        attempt.constraint = getattr(diag, "constraint_name", None)
        self._current.attempt = None


@contextlib.contextmanager
def race_run_inserts(gate: Gate, racer: str = "") -> Iterator[list[InsertAttempt]]:
    """While active, slot inserts into ``runs`` wait at ``gate``; yields the list the attempts are added to."""
    race = _Race(gate, racer)
    hooks = [("before_cursor_execute", race.before), ("after_cursor_execute", race.after),
             ("handle_error", race.failed)]  # fmt: skip
    for name, hook in hooks:
        event.listen(Engine, name, hook)
    try:
        yield race.attempts
    finally:
        for name, hook in hooks:
            event.remove(Engine, name, hook)


def collisions(attempts: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Attempts grouped by slot, in arrival order."""
    by_slot: dict[str, list[dict[str, Any]]] = {}
    for attempt in sorted(attempts, key=lambda a: a["arrived_at"]):
        by_slot.setdefault(attempt["slot"], []).append(attempt)
    return by_slot


def assert_collided(attempts: list[dict[str, Any]], racers: int) -> dict[str, list[dict[str, Any]]]:
    """Every slot was reached by all ``racers`` before any of them sent its insert; exactly one insert won and
    every other one was refused by PostgreSQL's unique constraint on (connection, slot)."""
    by_slot = collisions(attempts)
    for slot, tries in by_slot.items():
        assert len(tries) == racers and all(t["gate_complete"] for t in tries), (slot, tries)
        assert max(t["arrived_at"] for t in tries) <= min(t["sent_at"] for t in tries), (slot, tries)
        outcomes = sorted((t["outcome"], t["sqlstate"], t["constraint"]) for t in tries)
        refused = ("refused", UNIQUE_VIOLATION, RUNS_SLOT_CONSTRAINT)
        assert outcomes == [("inserted", None, None)] + [refused] * (racers - 1), (slot, tries)
    return by_slot
