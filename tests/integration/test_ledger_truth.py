"""Issue 10, "What was found" 7: the ledger tells what happened, killed attempts and raised limits included.

1. A worker process group SIGKILLed while its chunk talks to the registry: the requests that attempt sent are
   counted in the run's ``registry_calls`` (worker.sync.send_tally), so the ledger equals the registry sandbox's request
   log. Before, the ledger only counted attempts that ended by themselves (2,760 counted, 2,836 received).
2. A run paused by the API budget, the org's limit raised, the run resumed: `runs show` prints the limit as last
   measured, not the one read when the run was planned.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import time_machine
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from config.settings import get_settings
from tests.conftest import RegsyncEnv
from tests.integration.celery_cluster import (
    ClusterEnv,
    WorkerProcess,
    celery_cluster,
    sweeper_loop,
    unique_queue,
)
from tests.integration.inprocess_runs import (
    ListDispatcher,
    install_connection,
    start_run,
    sync_all,
    use_world,
    view,
)
from worker.cli.main import app
from worker.connections.apply import apply_connection
from worker.connections.secrets import set_secret
from worker.connections.spec import parse_spec
from worker.errors import AttemptSuperseded, RunClosed
from worker.infra.dispatch import CeleryDispatcher
from worker.ledger.db import session_scope
from worker.ledger.models import Chunk, Run, utcnow
from worker.sandbox.stack import Stack, sandbox_stack
from worker.sandbox.tls import RecordedRequest, Reply
from worker.sync import pump_ledger
from worker.sync.run_closed import closed_key
from worker.sync.runner import start_run as start_cluster_run
from worker.sync.runner import wait_for
from worker.sync.send_tally import pump_tally_for
from worker.sync.sweeper import sweep

CONNECTION = "truth"


@dataclass(frozen=True)
class TunedEnv(ClusterEnv):
    """The cluster's world plus settings of this test (``REGSYNC_*`` pairs)."""

    extra: tuple[tuple[str, str], ...] = ()

    def variables(self) -> dict[str, str]:
        return {**super().variables(), **dict(self.extra)}


class KillAtRequest:
    """In front of the registry sandbox: on the ``n``-th request, SIGKILL the worker that sent it, then answer.

    The request has reached the registry (it is in its log); the worker dies waiting for the answer. With one
    registry request in flight per worker (REGSYNC_REGISTRY_CONCURRENCY=1) it is the attempt's last one.
    """

    def __init__(self, stack: Stack, n: int) -> None:
        self._server = stack.registry._server
        self._route = self._server._handler
        self._n = n
        self._seen = 0
        self._lock = threading.Lock()
        self.victim: WorkerProcess | None = None
        self.fired = threading.Event()
        self._server._handler = self._dispatch

    def _dispatch(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self._seen += 1
            fire = self._seen == self._n and self.victim is not None
        if fire and self.victim is not None:
            self.victim.kill()
            self.fired.set()
        return self._route(request)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with sandbox_stack(tmp_path / "sandbox", 300) as started:
        yield started


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("pump", [False, True], ids=["chunks_fetch", "registry_pump"])
@pytest.mark.timeout(150)
def test_calls_of_a_sigkilled_attempt_count_in_the_runs_registry_calls(  # noqa: PLR0917 (fixtures)
    env: RegsyncEnv, redis_url: str, stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pump: bool
) -> None:
    # One request in flight per sender (a chunk; the pump too), so that the killed one's last request is the one
    # the registry received: a request killed on its way out is counted (errs on the side of the quota).
    world = TunedEnv(
        database_url=env.database_url,
        redis_url=redis_url,
        secret_key=env.secret_key,
        ca_bundle=stack.ca.bundle_path,
        queue=unique_queue("regsync-truth"),
        log_level="INFO",
        registry_pump=pump,
        extra=(("REGSYNC_REGISTRY_CONCURRENCY", "1"), ("REGSYNC_REGISTRY_PUMP_MAX_IN_FLIGHT", "1")),
    )
    world.apply(monkeypatch)
    data = stack.spec_data(CONNECTION, "proff", requests_per_second=2000, burst=200)
    data["sync"] = {"chunk_size": 50}
    spec = parse_spec(data)
    with session_scope() as session:
        apply_connection(session, spec, "test")
    with session_scope() as session:
        set_secret(session, CONNECTION, "salesforce_client_secret", stack.client_secret, "test")
        set_secret(session, CONNECTION, "registry_token", stack.registry_token, "test")
    killer = KillAtRequest(stack, n=70)  # inside the second chunk's lookups (about 50 per chunk)

    with celery_cluster(world, tmp_path / "workers", 1) as cluster, sweeper_loop() as sweeper:
        killer.victim = cluster.workers[0]
        run_id = start_cluster_run(CONNECTION, CeleryDispatcher(), triggered_by="test")
        assert killer.fired.wait(60), "the worker was never killed"
        cluster.start(1)  # the survivor takes the lost chunk over once the sweeper requeued it
        final = wait_for(run_id, lambda _view: None, poll_s=0.2, timeout_s=90)

    received = len(stack.registry.requests)
    truth = stack.truth(spec)
    assert final["status"] == "partially_failed"
    assert {k: final[k] for k in ("planned", "invalid", "updated", "failed")} == {
        "planned": truth.planned,
        "invalid": truth.invalid,
        "updated": truth.updated,
        "failed": truth.failed,
    }
    assert max(stack.salesforce.writes.values()) == 1
    assert received > truth.unique_valid_org_numbers, "the dead attempt's lookups were not asked again"
    # Chunks alone: one request in flight in the killed process, the one the registry received, so the ledger
    # equals the log. With the pump, that process has two senders (the pump's one request and a chunk's): a request
    # killed on its way out is counted and never received, so the count may exceed the log by that one (seen: 319
    # against 318), never fall below it. The count committed with the close is already complete: the closing chunk
    # refuses the run's requests before it counts the pump's (CI once saw 280 counted at the close, 281 received, when
    # the count came after the close and the surviving pump sent on), and it does not move afterwards.
    in_flight = 2 if pump else 1
    assert received <= final["registry_calls"] <= received + in_flight - 1, (
        final["registry_calls"],
        received,
    )
    assert view(run_id)["registry_calls"] == final["registry_calls"]
    # What the kill lost was redone, and its calls counted by whoever took it over: a chunk, requeued by the sweeper
    # or claimed straight from its expired lease by the survivor when the broker redelivered its message first; with
    # the pump, possibly only the pump (the killed process was between two chunks when its pump sent request 70),
    # resumed as a new pump attempt. CI saw each of the three.
    with session_scope() as session:
        redone = session.execute(select(func.max(Chunk.attempt)).where(Chunk.run_id == run_id)).scalar_one()
        run = session.get(Run, run_id)
        assert run is not None
        pump_attempts = run.pump_attempts
    chunk_redone = sweeper.totals()["expired_chunks"] >= 1 or redone >= 2
    assert chunk_redone or (pump and pump_attempts >= 2), (sweeper.totals(), redone, pump_attempts)
    assert not sweeper.errors


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_the_closing_chunk_stops_the_runs_requests_before_it_counts_the_pumps(
    env: RegsyncEnv, stack: Stack, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count committed with the close is final: whatever the pump sent is in it, and nothing can follow it."""
    use_world(monkeypatch, stack, redis_url)
    connection_id = install_connection(stack, stack.spec_data("closing", requests_per_second=2000, burst=200))
    dispatch = ListDispatcher()
    run_id = start_run(connection_id, dispatch)
    pump = pump_ledger.claim(run_id, 3)  # a pump that sent 3 requests since its last report (it then died)
    assert pump is not None
    pump_sends = pump_tally_for(get_settings(), pump.run_tag, pump.attempt)
    assert pump_sends is not None
    for _ in range(3):
        pump_sends()
    marked_when_counted: list[bool] = []
    count_the_pump = pump_ledger.charge_lost

    def spy(session: Session, closing_run: int, run_tag: str) -> int:
        marked_when_counted.append(bool(redis.Redis.from_url(redis_url).exists(closed_key(run_tag))))
        return count_the_pump(session, closing_run, run_tag)

    monkeypatch.setattr(pump_ledger, "charge_lost", spy)
    sync_all(dispatch.take_chunks())
    final = view(run_id)

    assert final["status"] in {"succeeded", "partially_failed"} and marked_when_counted == [True]
    assert final["registry_calls"] == len(stack.registry.requests) + 3
    with pytest.raises(RunClosed):
        pump_sends()  # refused before it is sent: a pump still at work can add nothing to the closed run
    assert view(run_id)["registry_calls"] == final["registry_calls"]


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_a_pump_taken_over_is_counted_once_and_a_live_one_is_left_alone(
    env: RegsyncEnv, stack: Stack, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_world(monkeypatch, stack, redis_url)
    connection_id = install_connection(
        stack, stack.spec_data("takeover", requests_per_second=2000, burst=200)
    )
    run_id = start_run(connection_id, ListDispatcher())
    first = pump_ledger.claim(run_id, 3)
    assert first is not None
    first_sends = pump_tally_for(get_settings(), first.run_tag, first.attempt)
    assert first_sends is not None
    first_sends()
    first_sends()
    before = view(run_id)["registry_calls"]
    assert pump_ledger.claim(run_id, 3, resume_only=True) is None  # a chunk's check while the pump is leased
    first_sends()  # ... leaves it alone: it goes on sending
    with session_scope() as session:  # its lease runs out: it froze, or it is only slow
        session.execute(
            update(Run).where(Run.id == run_id).values(pump_lease_until=utcnow() - dt.timedelta(seconds=1))
        )
    second = pump_ledger.claim(run_id, 3, resume_only=True)
    assert second is not None and second.attempt == 2
    assert view(run_id)["registry_calls"] == before + 3  # what the first one sent, once
    with pytest.raises(AttemptSuperseded):
        first_sends()  # it woke up: refused before sending, so nothing it does goes uncounted
    pump_ledger.beat(first, 0, 4)  # and its late report counts nothing twice
    assert view(run_id)["registry_calls"] == before + 3


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_runs_show_prints_the_api_limit_as_last_measured_after_a_pause_and_resume(
    env: object, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sandbox_stack(tmp_path, 200, stale_share=0.5) as stack:
        use_world(monkeypatch, stack, redis_url)
        stack.salesforce.set_api_usage(0, 1_000)
        data = stack.spec_data("budget", requests_per_second=1000, burst=100)
        data["sync"] = {"chunk_size": 25}
        data["budget"] = {"max_api_share": 0.009}  # 9 calls a day of 1,000: it pauses after a few chunks
        connection_id = install_connection(stack, data)
        dispatch = ListDispatcher()
        run_id = start_run(connection_id, dispatch)
        sync_all(dispatch.take_chunks())
        paused = view(run_id)
        used, _ = stack.salesforce.api_usage
        stack.salesforce.set_api_usage(used, 250_000)  # the admin raised the org's limit meanwhile
        tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
        with time_machine.travel(dt.datetime.combine(tomorrow, dt.time(0, 0, 5), dt.UTC), tick=True):
            assert sweep(dispatch).runs_resumed == 1
            sync_all(dispatch.take_chunks())
        final = view(run_id)
        shown = CliRunner().invoke(app, ["runs", "show", str(run_id)], env={"COLUMNS": "200"})

    assert (paused["status"], paused["api_limit"]) == ("paused_budget", 1_000)
    assert final["status"] == "partially_failed" and final["api_limit"] == 250_000
    assert "of 250000 per day" in shown.output, shown.output
