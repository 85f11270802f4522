"""Mass update through real Celery worker processes on Redis, with the ledger on PostgreSQL and on SQLite.

Issue 2, acceptance 2 + 5: 10,000 sandbox Accounts through two ``celery worker`` processes; every valid Account
ends with the registry's values, unchanged ones get no write, failures are listed with their codes, and the
counts add up and equal the seeded data's truth. Acceptance 3: a worker process group SIGKILLed inside a chunk
(while looking up, or right after its PATCH reached Salesforce but before the ledger recorded it); the sweeper
resends the chunk once its lease expires, the other worker takes it over by compare-and-set, and the run still
completes with exact counts and no record written twice.
"""

from __future__ import annotations

import copy
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.conftest import RegsyncEnv
from tests.integration.celery_cluster import (
    Cluster,
    ClusterEnv,
    WorkerProcess,
    celery_cluster,
    cluster_env_for,
    install_connection,
    sweeper_loop,
)
from worker.company import Company, CompanyStatus
from worker.connections.spec import ConnectionSpec
from worker.errors import InvalidOrgNumber
from worker.infra.dispatch import CeleryDispatcher
from worker.ledger.db import session_scope
from worker.ledger.models import Chunk, ChunkStatus, Run
from worker.ledger.views import list_failures
from worker.orgnr import normalise
from worker.registry.outcomes import NOTICE_CODES
from worker.sandbox.registry import registry_view
from worker.sandbox.stack import Stack, sandbox_stack
from worker.sync.policies import plan_record
from worker.sync.runner import start_run, wait_for

CONNECTION = "cluster"
COUNT_KEYS = ("planned", "invalid", "unchanged", "updated", "failed")


@dataclass
class World:
    """A sandbox stack, the ledger/broker environment of the workers, and the connection applied to it."""

    stack: Stack
    spec: ConnectionSpec
    env: ClusterEnv
    originals: dict[str, dict[str, Any]]
    directory: Path


@pytest.fixture
def make_world(
    env: RegsyncEnv, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., World]]:
    """Builds a World of ``n`` Accounts: sandbox started, connection applied, secrets stored (stopped afterwards)."""
    contexts: list[Any] = []

    def build(n: int, *, chunk_size: int = 200, log_level: str = "DEBUG") -> World:
        context = sandbox_stack(tmp_path / "sandbox", n)
        stack = context.__enter__()
        contexts.append(context)
        world_env = cluster_env_for(env, redis_url, stack, log_level=log_level)
        world_env.apply(monkeypatch)
        data = stack.spec_data(CONNECTION, "proff", requests_per_second=2000, burst=200)
        data["sync"] = {"chunk_size": chunk_size}
        spec = install_connection(stack, data)
        originals = {a["Id"]: copy.deepcopy(dict(a)) for a in stack.dataset.accounts}
        return World(stack, spec, world_env, originals, tmp_path)

    yield build
    for context in reversed(contexts):
        context.__exit__(None, None, None)


# --- what the sandbox must look like afterwards ---------------------------------------------------------------


Outcomes = dict[str, tuple[str, dict[str, Any]]]


def expected_outcome(world: World) -> Outcomes:
    """Per record, computed from the ORIGINAL account and the registry's company: its fate and final values.

    Fates: ``invalid`` (org number fails its checksum), ``unchanged``, ``rejected`` (the sandbox's validation rule
    refuses the write), ``updated`` (must now hold original + the planned changes).
    """
    companies = {(c.country, c.org_number): c for c in world.stack.dataset.companies}
    rejected = set(world.stack.validation_failures)
    outcome: Outcomes = {}
    for record_id, original in world.originals.items():
        company = company_of(companies, original, world.spec.registry.provider)
        if company is None:
            outcome[record_id] = ("invalid", original)
            continue
        changes = plan_record(original, company, world.spec.mapping, {}).changes
        if not changes:
            outcome[record_id] = ("unchanged", original)
        elif record_id in rejected:
            outcome[record_id] = ("rejected", original)
        else:
            outcome[record_id] = ("updated", {**original, **changes})
    return outcome


def company_of(
    companies: dict[tuple[str, str], Company], original: dict[str, Any], provider: str
) -> Company | None:
    """What the registry says about an original account (through ``provider``'s sandbox view); None when its org
    number is invalid."""
    country = str(original.get("BillingCountryCode") or "")
    try:
        org = normalise(country, original.get("Org_Number__c"))
    except InvalidOrgNumber:
        return None
    company = companies.get((country, org)) or Company(
        org_number=org, country=country, status=CompanyStatus.NOT_FOUND
    )
    return registry_view(provider, company)  # what the registry can say of it


def noticed_records(world: World, outcome: Outcomes) -> set[str]:
    """Records the registry calls not active (a notice, not a failure), unless their write failed (a failure row)."""
    companies = {(c.country, c.org_number): c for c in world.stack.dataset.companies}
    return {
        record_id
        for record_id, (fate, _) in outcome.items()
        if fate in ("updated", "unchanged")
        and (company := company_of(companies, world.originals[record_id], world.spec.registry.provider))
        is not None
        and company.status is not CompanyStatus.ACTIVE
    }


def assert_counts_exact(world: World, view: dict[str, Any]) -> None:
    truth = world.stack.truth(world.spec)
    assert view["status"] == "partially_failed", view
    assert {k: view[k] for k in COUNT_KEYS} == {k: getattr(truth, k) for k in COUNT_KEYS}
    assert view["planned"] == len(world.originals)
    assert view["planned"] == view["invalid"] + view["unchanged"] + view["updated"] + view["failed"]
    assert view["fetched"] == view["unchanged"] + view["updated"] + view["failed"]
    assert view["not_processed"] == 0
    assert view["chunks_done"] == view["chunks_total"] > 0


def assert_sandbox_matches(world: World, outcome: Outcomes) -> None:
    """Every record holds exactly what the registry says it should; only changed records were written, once."""
    current = world.stack.salesforce.snapshot()
    wrong = {}
    for record_id, (_fate, want) in outcome.items():
        diff = {k: (current[record_id].get(k), v) for k, v in want.items() if current[record_id].get(k) != v}
        if diff:
            wrong[record_id] = diff
    assert not wrong, f"{len(wrong)} records differ from the expected values, e.g. {list(wrong.items())[:3]}"
    writes = world.stack.salesforce.writes
    assert {rid for rid, n in writes.items() if n} == {
        rid for rid, (fate, _) in outcome.items() if fate == "updated"
    }
    assert max(writes.values()) == 1, f"written twice: {[rid for rid, n in writes.items() if n > 1][:5]}"


def assert_failures_listed(world: World, outcome: Outcomes, run_id: int) -> None:
    """`runs failures` lists each invalid org number and each refused write once, with its code."""
    with session_scope() as session:
        rows = list_failures(session, run_id, limit=100_000)
    listed = [(row["record_id"], row["error_code"]) for row in rows if not row["notice"]]
    expected = {(rid, "ORGNR_INVALID") for rid, (fate, _) in outcome.items() if fate == "invalid"}
    expected |= {(rid, "FIELD_CUSTOM_VALIDATION_EXCEPTION") for rid in world.stack.validation_failures}
    assert sorted(listed) == sorted(expected)
    notices = [(row["record_id"], row["error_code"]) for row in rows if row["notice"]]
    assert sorted(rid for rid, _ in notices) == sorted(noticed_records(world, outcome))
    assert {code for _, code in notices} <= NOTICE_CODES
    invalid = [row for row in rows if row["error_code"] == "ORGNR_INVALID"]
    assert all(row["org_number"] for row in invalid), "an invalid org number is listed without the number"


def assert_no_secret_in(text: str, world: World) -> None:
    secrets = {"registry token": world.stack.registry_token, "client secret": world.stack.client_secret}
    assert not [name for name, value in secrets.items() if value in text]


def assert_run_correct(world: World, view: dict[str, Any], cluster: Cluster) -> None:
    assert_counts_exact(world, view)
    outcome = expected_outcome(world)
    assert_sandbox_matches(world, outcome)
    assert_failures_listed(world, outcome, view["id"])
    assert {r.method for r in world.stack.registry.requests} == {"GET"}
    output = cluster.output()
    assert "Traceback" not in output
    assert_no_secret_in(output, world)


# --- acceptance 2 + 5 ------------------------------------------------------------------------------------------


@pytest.mark.timeout(150)
def test_ten_thousand_accounts_through_two_worker_processes(make_world: Callable[..., World]) -> None:
    # INFO, not DEBUG: httpcore's ten DEBUG lines per registry request double the workers' CPU at this size.
    # The CLI privacy test (tests/e2e/test_privacy_e2e.py) searches DEBUG output; the kill tests run at DEBUG.
    world = make_world(10_000, log_level="INFO")
    started = time.monotonic()
    with celery_cluster(world.env, world.directory / "workers", 2) as cluster, sweeper_loop() as sweeper:
        run_id = start_run(CONNECTION, CeleryDispatcher(), triggered_by="test")
        view = wait_for(run_id, lambda _view: None, poll_s=0.2, timeout_s=110)

    assert_run_correct(world, view, cluster)
    assert not sweeper.errors
    assert sweeper.totals().get("expired_chunks", 0) == 0, "a healthy run should need no resend"
    print(
        f"10,000 accounts through 2 workers: run {view['duration_s']} s, test {time.monotonic() - started:.1f} s"
    )


# --- acceptance 3 ----------------------------------------------------------------------------------------------


def chunk_states() -> tuple[int, set[tuple[int, int]]]:
    """Number of done chunks, and (id, attempt) of the running ones."""
    with session_scope() as session:
        done = session.execute(
            select(func.count()).select_from(Chunk).where(Chunk.status == ChunkStatus.DONE.value)
        ).scalar_one()
        running = session.execute(
            select(Chunk.id, Chunk.attempt).where(Chunk.status == ChunkStatus.RUNNING.value)
        ).all()
    return int(done), {(int(i), int(a)) for i, a in running}


def chunk_row(chunk_id: int) -> Chunk:
    with session_scope() as session:
        chunk = session.get(Chunk, chunk_id)
        assert chunk is not None
        return chunk


def poll_until(predicate: Callable[[], Any], timeout_s: float) -> Any:
    """``predicate``'s first truthy value within ``timeout_s``, else None."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return None


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    value = poll_until(predicate, timeout_s)
    if not value:
        pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
    return value


def two_running_after_three_done() -> bool:
    done, running = chunk_states()
    return done >= 3 and len(running) == 2


def freeze_inside_chunk(victim: WorkerProcess) -> tuple[int, int]:
    """SIGSTOP ``victim`` while it holds a chunk (some chunks done, two running); returns that (chunk id, attempt).

    Once the other worker finished two more chunks, a chunk still running with its attempt from the moment of the
    freeze can only be the frozen worker's. Frozen between two chunks: thaw and try again.
    """
    for _ in range(20):
        wait_until(two_running_after_three_done, 120, "two chunks running after three done")
        victim.signal_group(signal.SIGSTOP)
        done_at_freeze, running_at_freeze = chunk_states()

        def two_more_done(done: int = done_at_freeze) -> bool:
            return chunk_states()[0] >= done + 2

        # No progress: the victim was frozen inside a ledger transaction whose row locks the other worker needs
        # (or between chunks); thaw it and try again rather than wait for ever.
        if poll_until(two_more_done, 30):
            held = running_at_freeze & chunk_states()[1]
            if held:
                return held.pop()
        victim.signal_group(signal.SIGCONT)
    pytest.fail("never caught the first worker inside a chunk")


class KillAfterWrite:
    """Wraps the sandbox store's PATCH: once the victim's chunk is written, SIGKILL the victim before it is answered.

    The write has reached Salesforce; the ledger still only holds the pending hashes. The retry must recognise
    its own write (no second PATCH) and count the records as updated.
    """

    def __init__(
        self, update: Callable[..., list[dict[str, Any]]], victim: WorkerProcess, chunk: tuple[int, int]
    ):
        self._update = update
        self._victim = victim
        self._chunk_id, self._attempt = chunk
        self._record_ids = set(chunk_row(self._chunk_id).record_ids)
        self.fired = threading.Event()
        self.written: list[str] = []

    def __call__(self, items: Sequence[Any], all_or_none: bool) -> list[dict[str, Any]]:
        results = self._update(items, all_or_none)
        ids = {item.get("id") or item.get("Id") for item in items if isinstance(item, dict)}
        if ids & self._record_ids and not self.fired.is_set() and self._still_the_victims():
            self.written = [result["id"] for result in results if result.get("success")]
            self._victim.kill()
            self.fired.set()
        return results

    def _still_the_victims(self) -> bool:
        chunk = chunk_row(self._chunk_id)
        return chunk.status == ChunkStatus.RUNNING.value and chunk.attempt == self._attempt


def written_or_done(hook: KillAfterWrite, chunk_id: int) -> bool:
    return hook.fired.is_set() or chunk_row(chunk_id).status != ChunkStatus.RUNNING.value


def kill_after_write(world: World, victim: WorkerProcess, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """Freeze the victim inside a chunk, arm :class:`KillAfterWrite` for it, thaw it; retry if it wrote nothing."""
    store = (
        world.stack.salesforce._store
    )  # the sandbox's record store: the one place to act between write and reply
    original = store.update
    for _ in range(10):
        chunk = freeze_inside_chunk(victim)
        hook = KillAfterWrite(original, victim, chunk)
        monkeypatch.setattr(store, "update", hook)
        victim.signal_group(signal.SIGCONT)

        def patched(hook: KillAfterWrite = hook, chunk_id: int = chunk[0]) -> bool:
            return written_or_done(hook, chunk_id)

        wait_until(patched, 30, "the victim's PATCH")
        monkeypatch.setattr(store, "update", original)
        if hook.fired.is_set():
            assert hook.written, "the victim's PATCH wrote nothing, so the crash proves nothing"
            assert all(world.stack.salesforce.writes[rid] == 1 for rid in hook.written)
            return chunk
    pytest.fail("the first worker never wrote a chunk it held")


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("moment", ["inside_lookups", "after_write_before_ledger", "frozen_past_its_lease"])
@pytest.mark.timeout(360)
def test_sigkilled_worker_loses_no_record_and_no_count(
    make_world: Callable[..., World], moment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(1_200, chunk_size=60)
    started = time.monotonic()
    with celery_cluster(world.env, world.directory / "workers", 2) as cluster, sweeper_loop() as sweeper:
        victim, survivor = cluster.workers
        run_id = start_run(CONNECTION, CeleryDispatcher(), triggered_by="test")
        if moment == "inside_lookups":
            lost = freeze_inside_chunk(victim)
            victim.kill()
        elif moment == "after_write_before_ledger":
            lost = kill_after_write(world, victim, monkeypatch)
        else:
            lost = freeze_inside_chunk(victim)
            # Up to a lease for the chunk to be requeued, the frozen worker's registry-pump claims (twice the
            # registry timeout + 5 s = 25 s) before the survivor fetches those numbers itself, then the survivor's
            # own queue first: 60 s was too short once on a loaded CI machine.
            wait_until(
                lambda: chunk_row(lost[0]).status == ChunkStatus.DONE.value,
                120,
                "the other worker to redo it",
            )
            victim.signal_group(signal.SIGCONT)  # it wakes up inside a chunk that is no longer its own
        killed_at = time.monotonic()
        view = wait_for(run_id, lambda _view: None, poll_s=0.2, timeout_s=90)
        assert survivor.alive() and victim.alive() == (moment == "frozen_past_its_lease")
    # Leaving the block stops the workers warmly: a woken-up victim finishes whatever it still does first.

    assert_run_correct(world, view, cluster)
    chunk = chunk_row(lost[0])
    assert chunk.status == ChunkStatus.DONE.value
    assert chunk.attempt == lost[1] + 1, "the killed worker's chunk was not taken over exactly once"
    # At least once: under heavy load a second sweep may resend before the survivor claims it (harmless: CAS).
    assert sweeper.totals()["expired_chunks"] >= 1, "the lost chunk should have been resent"
    assert not sweeper.errors
    after_kill, total = time.monotonic() - killed_at, time.monotonic() - started
    print(
        f"killed {moment}: chunk {lost[0]} (attempt {lost[1]}) taken over; run done {after_kill:.1f} s after the kill"
    )
    print(f"test {total:.1f} s, sweeper {sweeper.totals()}")


def asked_for_next_page(world: World) -> bool:
    """The planner committed page 1's chunks, dispatched them, and now waits for queryMore (page 2)."""
    return any(
        request.path.rsplit("/", 1)[-1].startswith("01g") for request in world.stack.salesforce.requests
    )


def planner_between_commits(run_id: int) -> bool:
    """Planning has stored some chunks (and its cursor) but not all of them yet."""
    with session_scope() as session:
        run = session.get(Run, run_id)
        assert run is not None
        return run.chunks_total > 0 and run.plan_cursor is not None and not run.planned_complete


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
@pytest.mark.timeout(150)
def test_planner_killed_between_commits_resumes_from_its_cursor(make_world: Callable[..., World]) -> None:
    # Two query pages (2,000 + 100 records); the planner commits every 1,000 valid records.
    world = make_world(2_100, chunk_size=100)
    with celery_cluster(world.env, world.directory / "workers", 2) as cluster, sweeper_loop() as sweeper:
        world.stack.salesforce.latency_s = 0.5  # the planner's queryMore for page 2 now takes a while
        run_id = start_run(CONNECTION, CeleryDispatcher(), triggered_by="test")
        wait_until(lambda: asked_for_next_page(world), 60, "the planner to ask for page 2")
        assert planner_between_commits(run_id)
        planner = next(worker for worker in cluster.workers if "regsync.plan_run[" in worker.output())
        planner.kill()
        world.stack.salesforce.latency_s = 0.0
        view = wait_for(run_id, lambda _view: None, poll_s=0.2, timeout_s=90)

    assert_run_correct(world, view, cluster)  # planned == 2,100 exactly: nothing was planned twice
    assert sweeper.totals()["plans_resent"] == 1, "the dead planner should be resent once, and only once"
    print(f"planner killed: sweeper {sweeper.totals()}")
