"""Alerts are evaluated after every run: closing a run tells the run-closed listeners once its transaction has
committed, and a Celery worker (only a worker) registers the listener that sends ``regsync.alerts_evaluate``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery.signals import worker_init

from tests.conftest import RegsyncEnv
from tests.integration.alerts_world import T0, add_connection, add_run
from worker.infra import dispatch
from worker.ledger import runs
from worker.ledger.db import session_scope

SQLITE = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)


@pytest.fixture
def heard() -> Iterator[list[int]]:
    calls: list[int] = []
    dispatch.run_closed_listeners.append(calls.append)
    yield calls
    dispatch.run_closed_listeners.remove(calls.append)


@SQLITE
def test_listeners_hear_of_a_closed_run_only_after_commit(env: RegsyncEnv, heard: list[int]) -> None:
    run_id = add_run(add_connection(), "running", T0, planned_complete=True)

    with session_scope() as session:
        assert runs.maybe_close(session, run_id, T0) is not None
        assert heard == []  # not yet committed: an evaluator elsewhere could not see it
    with session_scope() as session:
        assert runs.maybe_close(session, run_id, T0) is None  # closed already: no second announcement

    assert heard == [run_id]


@SQLITE
def test_a_rolled_back_close_is_not_announced(env: RegsyncEnv, heard: list[int]) -> None:
    run_id = add_run(add_connection(), "running", T0, planned_complete=True)

    with pytest.raises(RuntimeError), session_scope() as session:
        runs.maybe_close(session, run_id, T0)
        raise RuntimeError("the chunk's transaction failed")

    assert heard == []


def test_only_a_worker_registers_the_alert_evaluation_listener() -> None:
    from tasks import jobs

    assert jobs._evaluate_alerts_after not in dispatch.run_closed_listeners  # importing is not enough
    try:
        worker_init.send(sender=None)
        assert dispatch.run_closed_listeners.count(jobs._evaluate_alerts_after) == 1
    finally:
        while jobs._evaluate_alerts_after in dispatch.run_closed_listeners:
            dispatch.run_closed_listeners.remove(jobs._evaluate_alerts_after)
