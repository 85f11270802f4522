"""Every run ends: each planner and chunk error is transient (bounded retries) or permanent (recorded at once).

SQLite ledger, fakes of our own CRM/registry ports; the real planner, chunk sync and sweeper.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from config.settings import Settings, reset_settings
from tests.unit.fakes import FakeCrm, FakeDispatcher, FakeRegistry, counts, fake_clients, make_spec
from worker.alerts.config import AlertsSpec
from worker.alerts.detectors import run_stalled
from worker.alerts.snapshot import ConnectionState, RunFacts
from worker.company import Company, CompanyStatus
from worker.errors import (
    CrmAuthError,
    CrmPermanentError,
    CrmSchemaError,
    CrmTransientError,
    InternalError,
    LedgerError,
    LedgerUnavailable,
    SecretMissing,
    TransientError,
    fails_run,
)
from worker.ledger import db, runs
from worker.ledger.models import Base, Chunk, Connection, RecordFailure, Run, RunKind, utcnow
from worker.sync.chunk import sync_chunk
from worker.sync.failures import classify
from worker.sync.plan import Planner, plan_run
from worker.sync.runtime import Runtime
from worker.sync.sweeper import sweep

ORG = "923609016"


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    monkeypatch.setenv("REGSYNC_DATABASE_URL", url)
    monkeypatch.setenv("REGSYNC_SHARED_STATE", "local")
    reset_settings()
    db.reset_engines()
    Base.metadata.create_all(db.get_engine())
    yield url
    db.reset_engines()
    reset_settings()


@dataclass
class World:
    run_id: int
    crm: FakeCrm
    registry: FakeRegistry
    clients: Any
    settings: Settings
    dispatch: FakeDispatcher


def make_world(ledger: str, n: int = 5, chunk_size: int = 200, **settings: Any) -> World:
    spec = make_spec()
    spec = spec.model_copy(update={"sync": spec.sync.model_copy(update={"chunk_size": chunk_size})})
    with db.session_scope() as session:
        spec_json = spec.model_dump(mode="json")
        digest = hashlib.sha256(json.dumps(spec_json, sort_keys=True).encode()).hexdigest()
        connection = Connection(name="acme", spec=spec_json, spec_hash=digest)
        session.add(connection)
        session.flush()
        run_id = runs.create_run(session, connection.id, kind=RunKind.MANUAL, triggered_by="test").id
        connection_id = connection.id
    records = [{"Id": f"001{i:015d}", "Org_Number__c": ORG, "Name": "Old"} for i in range(n)]
    company = Company(org_number=ORG, country="NO", name="New AS", status=CompanyStatus.ACTIVE, employees=3)
    crm, registry = FakeCrm(records), FakeRegistry([company])
    runtime = Runtime(connection_id, "acme", spec, "sf-secret", "reg-token")
    values = {"database_url": ledger, "shared_state": "local", **settings}
    return World(
        run_id, crm, registry, fake_clients(runtime, crm, registry), Settings(**values), FakeDispatcher()
    )


def run_row(run_id: int) -> Run:
    with db.session_scope() as session:
        run = session.get(Run, run_id)
        assert run is not None
        return run


def chunk_rows(run_id: int) -> list[Chunk]:
    with db.session_scope() as session:
        return list(
            session.execute(select(Chunk).where(Chunk.run_id == run_id).order_by(Chunk.seq)).scalars()
        )


def failures(run_id: int) -> list[tuple[str, str]]:
    with db.session_scope() as session:
        rows = session.execute(select(RecordFailure).where(RecordFailure.run_id == run_id)).scalars()
        return [(row.error_code, row.message) for row in rows]


def plan(world: World, **kwargs: Any) -> str:
    return plan_run(world.run_id, world.dispatch, settings=world.settings, clients=world.clients, **kwargs)


def sync(world: World, chunk_id: int) -> str:
    return sync_chunk(chunk_id, settings=world.settings, clients=world.clients)


def failing_clients(exc: Exception) -> Any:
    @contextmanager
    def factory(_connection_id: int, _settings: Settings) -> Iterator[Any]:
        raise exc
        yield  # pragma: no cover

    return factory


# --- planning -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (
            SecretMissing("salesforce_client_secret is not set; set it with `regsync secret set`"),
            "SECRET_MISSING",
        ),
        (CrmAuthError("Salesforce refused the token request (invalid_client)"), "CRM_AUTH"),
        (CrmSchemaError("Salesforce INVALID_FIELD: No such column", code="INVALID_FIELD"), "INVALID_FIELD"),
    ],
)
def test_a_permanent_error_while_planning_fails_the_run_at_once(
    ledger: str, exc: Exception, code: str
) -> None:
    world = make_world(ledger)
    world.clients = failing_clients(exc)
    assert plan(world) == "failed"
    run = run_row(world.run_id)
    assert counts(run, "status", "error_code") == {"status": "failed", "error_code": code}
    assert run.error is not None and run.error.startswith(str(exc).rstrip("."))
    assert "regsync secret set" in run.error or "mapping" in run.error  # what to do
    assert run.finished_at is not None and run.plan_attempts == 1


def test_a_transient_planning_error_is_retried_then_fails_the_run_on_the_last_attempt(ledger: str) -> None:
    world = make_world(ledger, plan_max_attempts=2)
    world.crm.stream_records = _raise(CrmTransientError("Salesforce answered HTTP 503"))  # type: ignore[method-assign]
    with pytest.raises(CrmTransientError):
        plan(world)
    first = run_row(world.run_id)
    assert counts(first, "status", "plan_attempts", "plan_lease_until") == {
        "status": "running",
        "plan_attempts": 1,
        "plan_lease_until": None,  # released
    }
    assert plan(world) == "failed"
    run = run_row(world.run_id)
    assert counts(run, "status", "error_code") == {"status": "failed", "error_code": "CRM_TRANSIENT"}
    assert run.error == "gave up planning after 2 attempts: Salesforce answered HTTP 503"


def test_an_unexpected_exception_while_planning_fails_the_run_as_internal(ledger: str) -> None:
    world = make_world(ledger)
    world.crm.stream_records = _raise(KeyError("Id"))  # type: ignore[method-assign]
    assert plan(world) == "failed"
    assert run_row(world.run_id).error_code == "INTERNAL"


def test_a_planner_that_lost_its_lease_cannot_commit(ledger: str) -> None:
    world = make_world(ledger, n=3)
    with db.session_scope() as session:
        run = runs.claim_planning(session, world.run_id, 60, utcnow())
    assert run is not None
    zombie = Planner(
        run,
        Runtime(run.connection_id, "acme", make_spec(), "s", "t"),
        world.crm,
        world.dispatch,
        world.settings,
    )
    with db.session_scope() as session:  # its lease ran out and another planner took over
        session.execute(
            update(Run)
            .where(Run.id == world.run_id)
            .values(plan_lease_until=utcnow() - dt.timedelta(seconds=1))
        )
    with db.session_scope() as session:
        assert runs.claim_planning(session, world.run_id, 60, utcnow()) is not None
    with pytest.raises(LedgerError, match="lost its lease"):
        zombie.run()
    assert run_row(world.run_id).chunks_total == 0 and world.dispatch.chunks == []


# --- chunks -------------------------------------------------------------------------------------------------


def planned(world: World) -> list[int]:
    assert plan(world) == "planned"
    return list(world.dispatch.chunks)


def test_a_run_wide_chunk_error_fails_the_run_at_once_and_cancels_the_queued_chunks(ledger: str) -> None:
    world = make_world(ledger, n=30, chunk_size=10)
    first, *rest = planned(world)
    world.crm.read_by_ids = _raise(  # type: ignore[method-assign]
        CrmSchemaError("Salesforce INVALID_FIELD: No such column 'Gone__c'", code="INVALID_FIELD")
    )
    assert sync(world, first) == "aborted"
    run = run_row(world.run_id)
    assert counts(run, "status", "error_code") == {"status": "failed", "error_code": "INVALID_FIELD"}
    assert [c.status for c in chunk_rows(world.run_id)] == ["failed", "cancelled", "cancelled"]
    assert run.chunks_done == run.chunks_total == 3
    assert [sync(world, chunk_id) for chunk_id in rest] == ["not_claimed", "not_claimed"]
    assert sum(world.crm.writes.values()) == 0


def test_a_permanent_chunk_error_about_its_records_fails_only_them_without_retry(ledger: str) -> None:
    world = make_world(ledger, n=20, chunk_size=10)
    first, second = planned(world)
    original = world.crm.read_by_ids
    world.crm.read_by_ids = _raise(  # type: ignore[method-assign]
        CrmPermanentError("Salesforce JSON_PARSER_ERROR", code="JSON_PARSER_ERROR")
    )
    assert sync(world, first) == "gave_up"
    world.crm.read_by_ids = original  # type: ignore[method-assign]
    assert sync(world, second) == "done"
    run = run_row(world.run_id)
    assert counts(run, "status", "failed", "updated") == {
        "status": "partially_failed",
        "failed": 10,
        "updated": 10,
    }
    assert {code for code, _ in failures(world.run_id)} == {"JSON_PARSER_ERROR"}
    assert chunk_rows(world.run_id)[0].attempt == 1


def test_a_transient_chunk_error_is_retried_at_most_its_budget_then_its_records_fail(ledger: str) -> None:
    world = make_world(ledger, n=10, chunk_size=10, chunk_max_attempts=3)
    (chunk_id,) = planned(world)
    world.crm.read_by_ids = _raise(CrmTransientError("Salesforce answered HTTP 503"))  # type: ignore[method-assign]
    for _ in range(2):
        with pytest.raises(CrmTransientError):
            sync(world, chunk_id)
    assert sync(world, chunk_id) == "gave_up"
    run = run_row(world.run_id)
    assert counts(run, "status", "failed") == {"status": "failed", "failed": 10}
    assert set(failures(world.run_id)) == {
        ("CRM_TRANSIENT", "gave up after 3 attempts: Salesforce answered HTTP 503")
    }
    assert chunk_rows(world.run_id)[0].attempt == 3
    assert sync(world, chunk_id) == "not_claimed"


def test_a_chunk_taken_over_after_its_last_attempt_is_given_up_without_work(ledger: str) -> None:
    world = make_world(ledger, n=10, chunk_size=10, chunk_max_attempts=2)
    (chunk_id,) = planned(world)
    with db.session_scope() as session:  # two workers died inside it
        session.execute(
            update(Chunk)
            .where(Chunk.id == chunk_id)
            .values(attempt=2, status="running", lease_until=utcnow())
        )
    calls = world.crm.calls
    assert sync(world, chunk_id) == "gave_up"
    assert world.crm.calls == calls
    assert {code for code, _ in failures(world.run_id)} == {"CHUNK_LOST"}
    assert run_row(world.run_id).status == "failed"


# --- the sweeper --------------------------------------------------------------------------------------------


def test_the_sweeper_gives_up_a_chunk_lost_as_often_as_its_budget_allows(ledger: str) -> None:
    world = make_world(ledger, n=20, chunk_size=10, chunk_max_attempts=2)
    first, second = planned(world)
    assert sync(world, second) == "done"
    past = utcnow() - dt.timedelta(seconds=1)
    with db.session_scope() as session:
        session.execute(
            update(Chunk).where(Chunk.id == first).values(attempt=2, status="running", lease_until=past)
        )
    dispatch = FakeDispatcher()
    report = sweep(dispatch, settings=world.settings)
    assert counts(report, "chunks_given_up", "expired_chunks") == {"chunks_given_up": 1, "expired_chunks": 0}
    assert dispatch.chunks == []
    run = run_row(world.run_id)
    assert counts(run, "status", "failed", "updated") == {
        "status": "partially_failed",
        "failed": 10,
        "updated": 10,
    }
    assert {code for code, _ in failures(world.run_id)} == {"CHUNK_LOST"}


def test_the_sweeper_resends_a_lost_chunk_that_has_attempts_left(ledger: str) -> None:
    world = make_world(ledger, n=10, chunk_size=10, chunk_max_attempts=2)
    (chunk_id,) = planned(world)
    past = utcnow() - dt.timedelta(seconds=1)
    with db.session_scope() as session:
        session.execute(
            update(Chunk).where(Chunk.id == chunk_id).values(attempt=1, status="running", lease_until=past)
        )
    dispatch = FakeDispatcher()
    assert sweep(dispatch, settings=world.settings).expired_chunks == 1
    assert dispatch.chunks == [chunk_id]


def test_the_sweeper_fails_a_run_whose_planner_died_as_often_as_its_budget_allows(ledger: str) -> None:
    world = make_world(ledger, plan_max_attempts=2)
    past = utcnow() - dt.timedelta(seconds=1)
    with db.session_scope() as session:
        session.execute(
            update(Run)
            .where(Run.id == world.run_id)
            .values(status="running", plan_attempts=2, plan_lease_until=past)
        )
    dispatch = FakeDispatcher()
    report = sweep(dispatch, settings=world.settings)
    assert counts(report, "runs_failed", "plans_resent") == {"runs_failed": 1, "plans_resent": 0}
    assert dispatch.plans == []
    run = run_row(world.run_id)
    assert counts(run, "status", "error_code") == {"status": "failed", "error_code": "PLANNER_LOST"}


# --- detection and classification ---------------------------------------------------------------------------


def test_a_queued_run_that_never_starts_is_reported_stalled() -> None:
    now = dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)
    queued = RunFacts(id=1, kind="manual", status="queued", queued_at=now - dt.timedelta(minutes=31))
    state = ConnectionState(1, "acme", True, AlertsSpec(), runs=(queued,))
    (condition,) = run_stalled(state, now)
    assert condition.subject == "run:1" and condition.detected_at == now - dt.timedelta(minutes=1)


class _Orig(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__("boom")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("exc", "kind", "transient", "run_wide"),
    [
        (OperationalError("UPDATE", {}, _Orig("40001")), LedgerUnavailable, True, False),
        (OperationalError("UPDATE", {}, _Orig("57P01")), LedgerUnavailable, True, False),
        (OperationalError("UPDATE", {}, _Orig("P0001")), LedgerError, False, True),
        (ConnectionResetError("reset"), TransientError, True, False),
        (KeyError("Id"), InternalError, False, False),
    ],
)
def test_every_exception_is_classified_once(
    exc: Exception, kind: type, transient: bool, run_wide: bool
) -> None:
    error = classify(exc)
    assert isinstance(error, kind)
    assert (error.transient, fails_run(error)) == (transient, run_wide)
    assert "UPDATE" not in error.message  # no SQL (it can hold record Ids)


def test_backoff_doubles_up_to_its_cap_with_half_of_it_random() -> None:
    from tasks.jobs import backoff_s

    settings = Settings(retry_backoff_s=2.0, retry_backoff_max_s=10.0)
    assert [backoff_s(n, settings, jitter=lambda: 0.0) for n in range(4)] == [1.0, 2.0, 4.0, 5.0]
    assert backoff_s(0, settings, jitter=lambda: 0.999) == pytest.approx(2.0, abs=0.01)


def _raise(exc: Exception) -> Any:
    def raiser(*_args: Any, **_kwargs: Any) -> Any:
        raise exc

    return raiser


def test_the_planner_heartbeats_while_it_streams(ledger: str, monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world(ledger, n=12, chunk_size=5)
    clock = [0.0]
    monkeypatch.setattr("worker.sync.plan.time.monotonic", lambda: clock[0])
    leases: list[dt.datetime | None] = []
    stream = world.crm.stream_records

    def slow_stream(*args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        for record in stream(*args, **kwargs):
            clock[0] += world.settings.chunk_lease_s / 2  # half a lease per record: a beat every other record
            leases.append(run_row(world.run_id).plan_lease_until)
            yield record

    world.crm.stream_records = slow_stream  # type: ignore[method-assign]
    assert plan(world) == "planned"
    assert len(set(leases)) >= 5, "the plan lease was not extended while records streamed"
    assert run_row(world.run_id).planned == 12
