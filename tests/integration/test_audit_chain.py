"""The audit log's hash chain detects edited, deleted and reordered events, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import JSON, Engine, bindparam, select, text

from worker.ledger.audit import GENESIS_HASH, append_event, verify_chain
from worker.ledger.db import make_engine, session_scope
from worker.ledger.models import AuditEvent


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


def _append(engine: Engine, count: int, actor: str = "alice") -> list[int]:
    ids = []
    for number in range(count):
        with session_scope(engine) as session:
            event = append_event(
                session,
                actor=actor,
                action="connection.update",
                target=f"connection:c{number}",
                before={"registry.burst": number},
                after={"registry.burst": number + 1},
            )
            ids.append(event.id)
    return ids


def _verify(engine: Engine) -> tuple[bool, int, int | None, str | None]:
    with session_scope(engine) as session:
        result = verify_chain(session)
    return result.ok, result.checked, result.broken_id, result.reason


def _sql(engine: Engine, statement: str, **params: object) -> None:
    with engine.begin() as connection:
        connection.execute(text(statement), params)


def test_appended_events_form_a_chain_that_verifies(engine: Engine) -> None:
    ids = _append(engine, 3)

    with session_scope(engine) as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        result = verify_chain(session)
    assert events[0].prev_hash == GENESIS_HASH
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert (result.ok, result.checked, result.broken_id, result.head_hash) == (True, 3, None, events[-1].hash)
    assert [e.id for e in events] == ids


def test_empty_log_verifies(engine: Engine) -> None:
    assert _verify(engine) == (True, 0, None, None)


def test_values_are_hashed_as_stored(engine: Engine) -> None:
    with session_scope(engine) as session:
        append_event(
            session,
            actor="a",
            action="x",
            target="t",
            after={"when": dt.date(2024, 5, 1), "n": (1, 2), "ø": 1.5},
        )

    assert _verify(engine)[0] is True


def test_editing_an_events_after_via_sql_is_named(engine: Engine) -> None:
    ids = _append(engine, 3)
    statement = text("UPDATE audit_events SET after = :after WHERE id = :id").bindparams(
        bindparam("after", type_=JSON)
    )
    with engine.begin() as connection:
        connection.execute(statement, {"after": {"registry.burst": 999}, "id": ids[1]})

    ok, _checked, broken_id, reason = _verify(engine)

    assert not ok
    assert broken_id == ids[1]
    assert reason is not None and "modified" in reason


def test_editing_an_events_actor_is_named(engine: Engine) -> None:
    ids = _append(engine, 2)
    _sql(engine, "UPDATE audit_events SET actor = 'mallory' WHERE id = :id", id=ids[0])

    assert _verify(engine)[2] == ids[0]


def test_deleting_a_middle_event_names_the_event_after_the_gap(engine: Engine) -> None:
    ids = _append(engine, 4)
    _sql(engine, "DELETE FROM audit_events WHERE id = :id", id=ids[1])

    ok, checked, broken_id, reason = _verify(engine)

    assert (ok, checked, broken_id) == (False, 1, ids[2])
    assert reason is not None and "deleted" in reason


def test_deleting_the_first_event_is_detected(engine: Engine) -> None:
    ids = _append(engine, 2)
    _sql(engine, "DELETE FROM audit_events WHERE id = :id", id=ids[0])

    assert _verify(engine)[2] == ids[1]


def test_reordering_events_is_detected(engine: Engine) -> None:
    _first, second, third = _append(engine, 3)
    _sql(engine, "UPDATE audit_events SET id = :tmp WHERE id = :id", tmp=-1, id=second)
    _sql(engine, "UPDATE audit_events SET id = :new WHERE id = :id", new=second, id=third)
    _sql(engine, "UPDATE audit_events SET id = :new WHERE id = :id", new=third, id=-1)

    ok, _checked, broken_id, _reason = _verify(engine)

    assert not ok
    assert broken_id == second


def test_concurrent_appenders_never_fork_the_chain(engine: Engine) -> None:
    errors: list[BaseException] = []

    def appender(name: str) -> None:
        try:
            _append(engine, 8, actor=name)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=appender, args=(f"admin{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert _verify(engine)[:2] == (True, 32)
