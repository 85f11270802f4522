"""Backfills against the TLS sandbox org and registry: dry run vs real run, escaping, --only-failed, cancel."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from config.settings import get_settings
from tests.conftest import RegsyncEnv
from tests.integration.backfill_world import World, open_world
from tests.unit.fakes import counts
from worker.backfill.options import BackfillOptions, check_where, start_backfill
from worker.cli.main import app
from worker.connections.apply import load_connection
from worker.crm.salesforce import SalesforceClient
from worker.ledger import runs
from worker.ledger.cancel import cancel_run
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent, RecordFailure, RecordWrite, RunStatus, utcnow
from worker.registry.outcomes import NOTICE_CODES
from worker.sync.chunk import sync_chunk
from worker.sync.plan import plan_run
from worker.sync.runtime import load_runtime

INJECTION = "x' OR Name != '"


@pytest.fixture
def world(env: RegsyncEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with open_world(tmp_path / "sandbox", monkeypatch, 300, validation_failures=0) as found:
        yield found


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_dry_run_writes_nothing_and_its_per_field_counts_equal_the_real_run(world: World) -> None:
    world.connect(chunk_size=100)
    before = world.stack.salesforce.snapshot()

    dry = world.backfill(BackfillOptions(dry_run=True))

    assert world.patches() == []
    assert world.stack.salesforce.snapshot() == before
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(RecordWrite)) == 0  # no pending hash either
    assert (dry["status"], dry["dry_run"], dry["kind"]) == (
        "partially_failed",
        True,
        "backfill",
    )  # invalid org nrs
    assert dry["invalid"] > 0 and dry["failed"] == 0
    assert dry["updated"] > 20  # would-be updates

    real = world.manual()

    changed = Counter(name for change in world.stack.salesforce.changes for name in change.changed)
    assert {row["field"]: row["count"] for row in dry["field_changes"]} == dict(changed)
    assert real["updated"] == dry["updated"] == len(world.stack.salesforce.changes)
    after = world.stack.salesforce.snapshot()
    for row in dry["samples"]:
        assert 1 <= len(row["samples"]) <= 3
        for sample in row["samples"]:
            assert before[sample["record_id"]][row["field"]] == sample["old"]
            assert after[sample["record_id"]][row["field"]] == sample["new"]


def _describe_and_count(where: list[tuple[str, str, str]]) -> tuple[tuple[dict[str, str], ...], int]:
    with session_scope() as session:
        connection_id = load_connection(session, "demo")[0].id
    runtime = load_runtime(connection_id)
    with SalesforceClient(runtime.spec, runtime.crm_secret) as crm:
        conditions = check_where(where, crm.describe)
        return conditions, crm.count(BackfillOptions(where=conditions).filter_where(runtime.spec))


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_a_where_value_with_quotes_is_escaped_and_matches_nothing_unexpected(world: World) -> None:
    world.connect()
    target = next(iter(world.stack.salesforce.accounts))
    world.stack.salesforce.edit(target, Name="O'Brien AS")

    injected, injected_count = _describe_and_count([("name", "=", INJECTION)])
    quoted, quoted_count = _describe_and_count([("Name", "=", "O'Brien AS")])
    run = world.backfill(BackfillOptions(where=injected, dry_run=True))
    exact = world.backfill(BackfillOptions(where=quoted, dry_run=True))

    assert (injected_count, run["planned"], run["status"], run["fetched"]) == (0, 0, "succeeded", 0)
    assert (quoted_count, exact["planned"]) == (1, 1)
    queries = [r.query["q"][0] for r in world.stack.salesforce.api_requests() if "q" in r.query]
    assert any("Name = 'x\\' OR Name != \\''" in q for q in queries)
    assert world.patches() == []


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_only_failed_reruns_just_the_failed_records(
    env: RegsyncEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_world(tmp_path / "sandbox", monkeypatch, 300, validation_failures=4) as world:
        world.connect()
        first = world.manual()
        with session_scope() as session:
            query = select(RecordFailure.record_id).where(
                RecordFailure.run_id == first["id"], RecordFailure.error_code.not_in(NOTICE_CODES)
            )
            failed = set(session.execute(query).scalars())
        assert first["failed"] == 4 and len(failed) == 4 + first["invalid"]
        world.stack.salesforce.clear_faults()
        seen = len(world.stack.salesforce.requests)
        writes_before = Counter(world.stack.salesforce.writes)

        again = world.backfill(BackfillOptions(only_failed_run=first["id"]))

        touched: set[str] = set()
        for request in world.stack.salesforce.requests[seen:]:
            if request.method == "GET" and "ids" in request.query:
                touched |= set(request.query["ids"][0].split(","))
        assert touched <= failed and touched
        assert set(Counter(world.stack.salesforce.writes) - writes_before) == set(
            world.stack.validation_failures
        )
        assert (again["planned"], again["updated"], again["failed"]) == (len(failed), 4, 0)
        assert again["invalid"] == first["invalid"]


def test_cancel_while_planning_stops_the_planner_and_drops_every_chunk(world: World) -> None:
    world.connect(chunk_size=10)  # the planner commits every 100 valid records
    cancels: list[Any] = []
    run_ids: list[int] = []

    def cancel_once(_chunk_ids: list[int]) -> None:  # the admin cancels right after the first commit
        if not cancels:
            with session_scope() as session:
                cancels.append(cancel_run(session, run_ids[0], utcnow()))

    world.dispatch.on_sync = cancel_once
    run_ids.append(start_backfill("demo", BackfillOptions(), actor="tester", dispatch=world.dispatch))
    view = world.finish(run_ids[0])

    assert cancels[0].before == "running" and cancels[0].chunks_dropped == 10
    assert view["status"] == "cancelled"
    assert view["planned"] < 290  # the planner stopped streaming instead of planning everything
    assert set(view["chunk_states"]) == {"cancelled"} and view["chunks_done"] == view["chunks_total"]
    assert view["updated"] == 0 and world.patches() == []
    assert view["not_processed"] == view["planned"] - view["invalid"]


def test_cancel_drops_queued_chunks_lets_a_running_one_finish_and_counts_honestly(world: World) -> None:
    world.connect(chunk_size=50)
    run_id = start_backfill("demo", BackfillOptions(), actor="tester", dispatch=world.dispatch)
    world.dispatch.run_plans()
    first, *rest = world.dispatch.chunks
    world.dispatch.chunks.clear()
    world.stack.salesforce.latency_s = 0.3
    worker = threading.Thread(target=sync_chunk, args=(first,), kwargs={"settings": get_settings()})
    worker.start()
    while not any(
        r.path.endswith("/composite/sobjects/Account") for r in world.stack.salesforce.api_requests()
    ):
        threading.Event().wait(0.02)  # wait until the chunk re-reads its records: it is running

    with session_scope() as session:
        result = cancel_run(session, run_id, utcnow())
    worker.join(timeout=30)
    world.stack.salesforce.latency_s = 0.0
    world.dispatch.chunks.extend(rest)
    view = world.finish(run_id)

    assert counts(result, "after", "chunks_dropped") == {"after": "running", "chunks_dropped": len(rest)}
    assert view["status"] == "cancelled"
    assert view["chunk_states"].count("done") == 1 and view["chunk_states"].count("cancelled") == len(rest)
    assert view["updated"] == len(world.stack.salesforce.changes) > 0  # the running chunk's writes count
    assert view["updated"] + view["unchanged"] + view["failed"] == 50


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_runs_cancel_ends_a_queued_run_at_once_and_is_audited(world: World) -> None:
    world.connect()
    run_id = start_backfill("demo", BackfillOptions(dry_run=True), actor="tester", dispatch=world.dispatch)

    result = CliRunner().invoke(app, ["runs", "cancel", str(run_id), "--actor", "bob"])
    again = CliRunner().invoke(app, ["runs", "cancel", str(run_id), "--actor", "bob"])

    assert result.exit_code == 0, result.output
    assert "cancelled (0 queued chunk(s) dropped)" in result.output
    assert again.exit_code == 1 and "already ended (cancelled)" in again.output
    assert plan_run(run_id, world.dispatch, settings=get_settings()) == "not_claimed"
    assert world.stack.salesforce.api_requests() == []
    with session_scope() as session:
        events = [
            (e.actor, e.action, e.target, e.after) for e in session.execute(select(AuditEvent)).scalars()
        ]
    assert ("tester", "backfill.start") in [(actor, action) for actor, action, _t, _a in events]
    assert ("bob", "run.cancel", f"run:{run_id}", {"status": "cancelled", "chunks_dropped": 0}) in events


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_cancelling_a_run_paused_for_api_budget_closes_it(world: World) -> None:
    world.connect(chunk_size=100)
    run_id = start_backfill("demo", BackfillOptions(), actor="tester", dispatch=world.dispatch)
    world.dispatch.run_plans()
    with session_scope() as session:
        assert runs.transition(session, run_id, RunStatus.RUNNING, RunStatus.PAUSED_BUDGET, error="budget")

    with session_scope() as session:
        result = cancel_run(session, run_id, utcnow())
    world.dispatch.run_chunks()  # the chunk messages still in the queue find nothing to do

    assert counts(result, "before", "after", "chunks_dropped") == {
        "before": "paused_budget",
        "after": "cancelled",
        "chunks_dropped": 3,
    }
    view = world.view(run_id)
    assert (view["status"], view["error"], view["updated"]) == ("cancelled", None, 0)
    assert world.patches() == []
