"""The API budget guard on a real run: pause at regsync's daily share, resume on the next UTC day (sweeper).

Real planner, chunk syncs and clients against the TLS sandbox; budget counters in Redis. Time is moved with
time-machine to the next day, as the sweeper would find it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import select
from typer.testing import CliRunner

from tests.integration.inprocess_runs import (
    ListDispatcher,
    install_connection,
    start_run,
    sync_all,
    use_world,
    view,
)
from worker.budget.control import hand_back_if_paused, resume
from worker.cli.main import app
from worker.ledger import chunks, runs
from worker.ledger.db import session_scope
from worker.ledger.models import Chunk, Connection, RunKind, RunStatus, utcnow
from worker.sandbox.stack import sandbox_stack
from worker.sync.sweeper import sweep


def _chunks(run_id: int) -> list[Chunk]:
    with session_scope() as session:
        return list(
            session.execute(select(Chunk).where(Chunk.run_id == run_id).order_by(Chunk.seq)).scalars()
        )


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_run_pauses_at_its_daily_share_and_the_sweeper_resumes_it_next_day(
    env: object, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sandbox_stack(tmp_path, 200, stale_share=0.5) as stack:
        use_world(monkeypatch, stack, redis_url)
        stack.salesforce.set_api_usage(0, 1_000)
        data = stack.spec_data("budget", requests_per_second=1000, burst=100)
        data["sync"] = {"chunk_size": 25}  # 8 chunks
        # 14 calls a day: day 1 the run-start check (describe + 4 permission queries), the query page and 4 chunks
        # of 2 calls; day 2 the rest
        data["budget"] = {"max_api_share": 0.014}
        connection_id = install_connection(stack, data)
        dispatch = ListDispatcher()
        run_id = start_run(connection_id, dispatch)
        first = sync_all(dispatch.take_chunks())
        paused = view(run_id)
        shown = CliRunner().invoke(app, ["runs", "show", str(run_id)], env={"COLUMNS": "200"})
        untouched = [c for c in _chunks(run_id) if c.status == "queued"]
        assert sweep(dispatch).runs_resumed == 0  # same day: still spent

        tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
        with time_machine.travel(dt.datetime.combine(tomorrow, dt.time(0, 0, 5), dt.UTC), tick=True):
            report = sweep(dispatch)
            resent = dispatch.take_chunks()
            second = sync_all(resent)
        final = view(run_id)
        truth = stack.truth(stack.spec("budget"))
        writes = stack.salesforce.writes

    done = first.count("done")
    assert done >= 4 and first == ["done"] * done + ["paused"] * (len(first) - done) and len(first) == 8, (
        first
    )
    assert paused["status"] == "paused_budget" and paused["error_code"] is None
    assert "of its 14 Salesforce API calls for today" in paused["error"]
    assert shown.exit_code == 1 and "paused_budget" in shown.output and "paused:" in shown.output
    assert len(untouched) == len(first) - done and all(
        c.attempt == 0 for c in untouched
    )  # handed back untouched
    assert report.runs_resumed == 1 and sorted(resent) == sorted(c.id for c in untouched)
    assert set(second) == {"done"}
    for key in ("planned", "invalid", "unchanged", "updated", "failed"):
        assert final[key] == getattr(truth, key), key
    assert final["status"] == "partially_failed" and final["error"] is None
    assert max(writes.values()) == 1 and sum(writes.values()) == truth.updated  # none lost, none twice


@pytest.mark.parametrize("ledger_url", ["sqlite", "postgresql"], indirect=True)
def test_a_chunk_claimed_while_paused_is_never_stranded_by_a_resume(env: object) -> None:
    with session_scope() as session:
        connection = Connection(name="race", spec={}, spec_hash="x")
        session.add(connection)
        session.flush()
        run = runs.create_run(session, connection.id, kind=RunKind.MANUAL, triggered_by="test")
        run.status = RunStatus.PAUSED_BUDGET.value
        first, second = chunks.add_chunks(session, run, [["001A"], ["001B"]], utcnow())
    with session_scope() as session:
        early = chunks.claim(session, first, 60, utcnow())  # claimed while the run is paused …
        late = chunks.claim(session, second, 60, utcnow())
    assert early is not None and late is not None and early.run_paused and late.run_paused
    with session_scope() as session:
        assert hand_back_if_paused(session, early)  # … handed back before the resume: the resume sends it
    with session_scope() as session:
        resent = resume(session, early.run_id, utcnow())
    with session_scope() as session:
        kept = not hand_back_if_paused(session, late)  # … or it sees the resume and goes on itself
        statuses = {chunk_id: status for chunk_id, status in session.execute(select(Chunk.id, Chunk.status))}
    assert resent == [first]
    assert kept and statuses == {first: "queued", second: "running"}
