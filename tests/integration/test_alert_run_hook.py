"""Alerts are evaluated after every run: closing a run tells the caller's dispatcher (``run_closed``) once its
transaction has committed, and the tasks' dispatcher (only theirs) sends ``regsync.alerts_evaluate``."""

from __future__ import annotations

from typing import Any

import pytest

from config.task_names import ALERTS_EVALUATE
from tests.conftest import RegsyncEnv
from tests.integration.alerts_world import T0, add_connection, add_run
from tests.unit.fakes import FakeDispatcher
from worker.infra.dispatch import CeleryDispatcher
from worker.ledger import runs
from worker.ledger.db import session_scope

SQLITE = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)


@pytest.fixture
def dispatcher() -> FakeDispatcher:
    return FakeDispatcher()


@SQLITE
def test_listeners_hear_of_a_closed_run_only_after_commit(
    env: RegsyncEnv, dispatcher: FakeDispatcher
) -> None:
    run_id = add_run(add_connection(), "running", T0, planned_complete=True)

    with session_scope() as session:
        assert runs.maybe_close(session, run_id, T0, listener=dispatcher) is not None
        assert dispatcher.closed == []  # not yet committed: an evaluator elsewhere could not see it
    with session_scope() as session:
        # closed already: no second announcement
        assert runs.maybe_close(session, run_id, T0, listener=dispatcher) is None

    assert dispatcher.closed == [run_id]


@SQLITE
def test_a_rolled_back_close_is_not_announced(env: RegsyncEnv, dispatcher: FakeDispatcher) -> None:
    run_id = add_run(add_connection(), "running", T0, planned_complete=True)

    with pytest.raises(RuntimeError), session_scope() as session:
        runs.maybe_close(session, run_id, T0, listener=dispatcher)
        raise RuntimeError("the chunk's transaction failed")

    assert dispatcher.closed == []


def test_only_the_tasks_dispatcher_sends_the_alert_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks import jobs

    sent: list[tuple[str, dict[str, Any]]] = []

    class App:
        def send_task(self, name: str, kwargs: dict[str, Any]) -> None:
            sent.append((name, kwargs))

    monkeypatch.setattr("config.celery.get_app", App)
    CeleryDispatcher().run_closed(7)  # the CLI's and the API's: beat evaluates within 30 s
    assert sent == []
    jobs._dispatcher().run_closed(8)
    assert sent == [(ALERTS_EVALUATE, {"run_id": 8})]


@SQLITE
def test_a_failing_listener_does_not_fail_the_closing_transaction(env: RegsyncEnv) -> None:
    class Broken:
        def run_closed(self, run_id: int) -> None:
            raise ConnectionError("broker down")

    run_id = add_run(add_connection(), "running", T0, planned_complete=True)
    with session_scope() as session:
        assert runs.maybe_close(session, run_id, T0, listener=Broken()) is not None
    with session_scope() as session:
        assert runs.get_run(session, run_id).status != "running"
