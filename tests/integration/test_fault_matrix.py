"""Issue 10, acceptance 1: the fault matrix. Every run ends (or an alert is open) within the stall grace.

An error is injected at each stage of a run: the OAuth token, describe, the planner's query and queryMore, the
chunk's re-read, the PATCH, the registry lookup, and the ledger commit of a finished chunk. Each stage gets three
kinds of error: ``permanent`` (refused for good), ``transient`` (refused twice, then answered) and
``transient_forever`` (refused every time). Two real ``celery worker`` processes run the tasks, the sweeper ticks
every second in this process, the ledger is PostgreSQL and the broker Redis; the sandbox org and registry speak
TLS, and the errors come on the wire from a :class:`~tests.integration.faults.FaultSwitch` in front of them (the
ledger commit: a PostgreSQL trigger). Retry budgets and backoff are short through settings (3 attempts).

For each case:

- the run reaches a final state within the stall grace, with the expected status and error code;
- no record is written twice (the sandbox's write log), and what was written equals the run's ``updated``;
- no chunk is claimed (``attempt``) or re-read more often than its retry budget, no plan claimed more often;
- the counts add up: a transient fault changes nothing (counts equal the seeded data's truth), a permanent one
  fails the run at once with Salesforce's or the registry's code and opens ``run_failed`` (+ ``auth_revoked``
  for a refused credential), a fault that never stops gives up after the budget with the error recorded.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import claimed_redis, fresh_pg_database
from tests.integration.celery_cluster import (
    Cluster,
    ClusterEnv,
    SweeperLoop,
    celery_cluster,
    sweeper_loop,
    unique_queue,
)
from tests.integration.faults import (
    REGISTRY_FAULTS,
    SALESFORCE_FAULTS,
    STAGES,
    FaultSwitch,
    commit_faults_injected,
    fail_chunk_commits,
)
from worker.alerts.models import Alert
from worker.connections.apply import apply_connection
from worker.connections.secrets import set_secret
from worker.connections.spec import ConnectionSpec, parse_spec
from worker.infra.dispatch import CeleryDispatcher
from worker.ledger.db import session_scope
from worker.ledger.migrate import upgrade
from worker.ledger.models import Chunk, Run
from worker.ledger.views import list_failures, show_run
from worker.sandbox import salesforce_store
from worker.sandbox.stack import Stack, sandbox_stack
from worker.sync.runner import start_run

STAGE_NAMES = ("token", "describe", "query", "query_more", "reread", "write", "lookup", "ledger")
KINDS = ("permanent", "transient", "transient_forever")
ACCOUNTS = 60
CHUNK_SIZE = 10  # 6 chunks (fewer if invalid org numbers drop some records)
PAGE_SIZE = 25  # the planner's query answers in 3 pages: query + 2 × queryMore
ATTEMPTS = 3  # chunk_max_attempts and plan_max_attempts
TRANSIENT_TIMES = 2
#: The stall grace of this test world: every run must be final within it.
STALL_GRACE_S = 60.0
#: (status, error code) of a permanent fault per stage; None: whatever the describe check reports.
PERMANENT: dict[str, tuple[str, str | None]] = {
    "token": ("failed", "CRM_AUTH"),
    "describe": ("failed", None),
    "query": ("failed", "INVALID_FIELD"),
    "query_more": ("failed", "INSUFFICIENT_ACCESS"),
    "reread": ("failed", "INVALID_FIELD"),
    "write": ("failed", "INVALID_FIELD_FOR_INSERT_UPDATE"),
    "lookup": ("failed", "REGISTRY_AUTH"),
    "ledger": ("failed", "LEDGER"),
}
#: The code a fault that never stops leaves: on the run (planning stages) or on every record (chunk stages).
FOREVER_CODE = {
    "token": "CRM_TRANSIENT",
    "describe": "CRM_TRANSIENT",
    "query": "CRM_TRANSIENT",
    "query_more": "CRM_TRANSIENT",
    "reread": "CRM_TRANSIENT",
    "write": "CRM_TRANSIENT",
    "lookup": "REGISTRY_TRANSIENT",
    "ledger": "LEDGER_UNAVAILABLE",
}
PLANNING_STAGES = ("token", "describe", "query", "query_more")
AUTH_SIDE = {"CRM_AUTH": "crm", "REGISTRY_AUTH": "registry"}


@dataclass(frozen=True)
class MatrixEnv(ClusterEnv):
    """The cluster's world plus the short retry budgets of this test."""

    extra: tuple[tuple[str, str], ...] = ()

    def variables(self) -> dict[str, str]:
        return {**super().variables(), **dict(self.extra)}


@dataclass
class Case:
    stage: str
    kind: str
    stack: Stack
    spec: ConnectionSpec
    connection_id: int = 0

    @property
    def name(self) -> str:
        return f"fm-{self.stage}-{self.kind}".replace("_", "-")


@dataclass
class Matrix:
    cases: dict[tuple[str, str], Case]
    cluster: Cluster
    sweeper: SweeperLoop
    timings: dict[str, float] = field(default_factory=dict)


def _stacks(directory: Path, exits: contextlib.ExitStack) -> dict[tuple[str, str], Stack]:
    return {
        (stage, kind): exits.enter_context(
            sandbox_stack(
                directory / f"{stage}-{kind}",
                ACCOUNTS,
                validation_failures=3,
                invalid_share=0.05,
                stale_share=0.5,
            )
        )
        for stage in STAGE_NAMES
        for kind in KINDS
    }


def _bundle(directory: Path, stacks: dict[tuple[str, str], Stack]) -> Path:
    """One CA bundle trusted by the workers: every case's sandbox has its own CA."""
    path = directory / "all-sandbox-cas.pem"
    path.write_text("".join(s.ca.bundle_path.read_text() for s in stacks.values()), encoding="ascii")
    return path


def _install(case: Case) -> None:
    data = case.stack.spec_data(case.name, "proff", requests_per_second=2000, burst=200)
    data["sync"] = {"chunk_size": CHUNK_SIZE}
    case.spec = parse_spec(data)
    with session_scope() as session:
        case.connection_id = int(apply_connection(session, case.spec, "test").connection_id)
    with session_scope() as session:
        set_secret(session, case.name, "salesforce_client_secret", case.stack.client_secret, "test")
        set_secret(session, case.name, "registry_token", case.stack.registry_token, "test")


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    directory = tmp_path_factory.mktemp("fault-matrix")
    with (
        fresh_pg_database() as database_url,
        claimed_redis() as redis_url,
        contextlib.ExitStack() as exits,
        pytest.MonkeyPatch.context() as patch,
    ):
        upgrade(database_url)
        stacks = _stacks(directory / "sandbox", exits)
        env = MatrixEnv(
            database_url=database_url,
            redis_url=redis_url,
            secret_key=_secret_key(),
            ca_bundle=_bundle(directory, stacks),
            queue=unique_queue("regsync-fm"),
            chunk_lease_s=10,
            requeue_after_s=10,
            log_level="INFO",
            extra=(
                ("REGSYNC_CHUNK_MAX_ATTEMPTS", str(ATTEMPTS)),
                ("REGSYNC_PLAN_MAX_ATTEMPTS", str(ATTEMPTS)),
                ("REGSYNC_RETRY_BACKOFF_S", "0.2"),
                ("REGSYNC_RETRY_BACKOFF_MAX_S", "1"),
                ("REGSYNC_REGISTRY_MAX_RETRIES", "1"),
                ("REGSYNC_SHARED_STATE", "redis"),
            ),
        )
        for name in [n for n in __import__("os").environ if n.startswith("REGSYNC_") and "TEST" not in n]:
            patch.delenv(name)
        env.apply(patch)
        patch.setattr(salesforce_store, "PAGE_SIZE", PAGE_SIZE)  # the sandbox runs in this process
        cases = {key: Case(key[0], key[1], stack, stack.spec()) for key, stack in stacks.items()}
        for case in cases.values():
            _install(case)
        fail_chunk_commits(0, "40001", 0)  # installs the trigger (connection 0 does not exist)
        with celery_cluster(env, directory / "workers", 2) as cluster, sweeper_loop() as sweeper:
            found = Matrix(cases, cluster, sweeper)
            yield found
        print("\nfault matrix timings (s):", found.timings)


def _secret_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode("ascii")


# --- arming and observing --------------------------------------------------------------------------------------


def times_of(kind: str) -> int | None:
    return TRANSIENT_TIMES if kind == "transient" else None


def arm(case: Case) -> FaultSwitch | None:
    times = times_of(case.kind)
    pick = 0 if case.kind == "permanent" else 1
    if case.stage == "ledger":
        sqlstate = "P0001" if case.kind == "permanent" else "40001"
        fail_chunk_commits(case.connection_id, sqlstate, times)
        return None
    if case.stage == "lookup":
        switch = FaultSwitch(case.stack.registry._server)
        switch.arm("lookup", REGISTRY_FAULTS[pick], times)
        return switch
    switch = FaultSwitch(case.stack.salesforce._server)
    switch.arm(case.stage, SALESFORCE_FAULTS[case.stage][pick], times)
    return switch


def injected(case: Case, switch: FaultSwitch | None) -> int:
    if switch is None:
        return commit_faults_injected(case.connection_id, times_of(case.kind))
    return switch.injected[case.stage]


def settled(run_id: int) -> dict[str, Any] | None:
    """The run's view once it is final and none of its chunks is still running."""
    with session_scope() as session:
        view = show_run(session, run_id)
        busy = session.execute(
            select(Chunk.id).where(Chunk.run_id == run_id, Chunk.status.in_(["queued", "running"]))
        ).first()
    return view if view["finished_at"] and busy is None else None


def wait_settled(run_id: int) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    deadline = started + STALL_GRACE_S
    while time.monotonic() < deadline:
        view = settled(run_id)
        if view is not None:
            return view, time.monotonic() - started
        time.sleep(0.1)
    alerts = open_alerts(run_id)
    assert "run_stalled" in {kind for kind, _ in alerts}, (
        f"run {run_id} neither ended nor alerted in the grace"
    )
    pytest.fail(f"run {run_id} did not end within the stall grace (a run_stalled alert is open)")


def open_alerts(run_id: int) -> set[tuple[str, str]]:
    with session_scope() as session:
        connection_id = session.execute(select(Run.connection_id).where(Run.id == run_id)).scalar_one()
        rows = session.execute(
            select(Alert.kind, Alert.subject).where(
                Alert.connection_id == connection_id, Alert.status != "resolved"
            )
        ).all()
    return {(kind, subject) for kind, subject in rows}


def wait_alerts(run_id: int, wanted: set[tuple[str, str]]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if wanted <= open_alerts(run_id):
            return
        time.sleep(0.2)
    pytest.fail(f"alerts {wanted - open_alerts(run_id)} not open for run {run_id}")


def failure_rows(run_id: int) -> list[dict[str, Any]]:
    """The run's failure rows (registry notices, listed beside them, are not failures)."""
    with session_scope() as session:
        rows = list_failures(session, run_id, limit=10_000)
    return [row for row in rows if not row.get("notice")]


def chunks_of(run_id: int) -> list[Chunk]:
    with session_scope() as session:
        return list(session.execute(select(Chunk).where(Chunk.run_id == run_id)).scalars())


def rereads_per_chunk(case: Case, chunks: list[Chunk]) -> Counter[int]:
    """How often each chunk's records were re-read: one ``composite/sobjects`` GET per attempt that got that far."""
    owner = {record_id: chunk.id for chunk in chunks for record_id in chunk.record_ids}
    counts: Counter[int] = Counter()
    for request in case.stack.salesforce.requests:
        if STAGES["reread"](request):
            first = ",".join(request.query.get("ids", [])).split(",")[0]
            counts[owner[first]] += 1
    return counts


# --- the matrix ------------------------------------------------------------------------------------------------


def _params() -> list[Any]:
    params = []
    for stage in STAGE_NAMES:
        for kind in KINDS:
            params.append(pytest.param(stage, kind, id=f"{stage}-{kind}"))
    return params


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("stage", "kind"), _params())
def test_fault_at_each_stage_ends_the_run_within_the_stall_grace(
    matrix: Matrix, stage: str, kind: str
) -> None:
    case = matrix.cases[(stage, kind)]
    switch = arm(case)
    run_id = start_run(case.name, CeleryDispatcher(), triggered_by="test")
    view, took = wait_settled(run_id)
    matrix.timings[f"{stage}-{kind}"] = round(took, 1)

    assert injected(case, switch) >= 1, f"the {stage} fault was never hit"
    assert_bounded(case, run_id, view)
    assert_written_once_and_counted(case, view)
    if kind == "transient":
        assert_as_if_nothing_happened(case, view)
    elif kind == "permanent":
        assert_failed_at_once(case, view)
    else:
        assert_gave_up(case, view)
    assert not matrix.sweeper.errors


def assert_bounded(case: Case, run_id: int, view: dict[str, Any]) -> None:
    chunks = chunks_of(run_id)
    assert all(chunk.attempt <= ATTEMPTS for chunk in chunks), [c.attempt for c in chunks]
    assert max(rereads_per_chunk(case, chunks).values(), default=0) <= ATTEMPTS
    with session_scope() as session:
        run = session.get(Run, run_id)
        assert run is not None
        assert 1 <= run.plan_attempts <= ATTEMPTS


def assert_written_once_and_counted(case: Case, view: dict[str, Any]) -> None:
    writes = case.stack.salesforce.writes
    assert max(writes.values(), default=0) <= 1, "a record was written twice"
    done = view["invalid"] + view["unchanged"] + view["updated"] + view["failed"] + view["opted_out"]
    assert view["planned"] == done + view["not_processed"]
    assert len(failure_rows(view["id"])) == view["invalid"] + view["failed"]
    if case.stage != "ledger":  # a refused commit cannot record what the PATCH did (checked per kind below)
        assert view["updated"] == sum(writes.values())


def assert_as_if_nothing_happened(case: Case, view: dict[str, Any]) -> None:
    truth = case.stack.truth(case.spec)
    expected = {"planned": truth.planned, "invalid": truth.invalid, "unchanged": truth.unchanged}
    expected |= {"updated": truth.updated, "failed": truth.failed}
    assert {key: view[key] for key in expected} == expected
    assert view["status"] == "partially_failed" and view["error_code"] is None
    codes = Counter(row["error_code"] for row in failure_rows(view["id"]))
    assert dict(codes) == truth.failure_codes


def assert_failed_at_once(case: Case, view: dict[str, Any]) -> None:
    status, code = PERMANENT[case.stage]
    assert view["status"] == status
    assert code is None or view["error_code"] == code, view["error"]
    assert view["error"], "a failed run says why"
    wanted = {("run_failed", "runs")}
    if code in AUTH_SIDE:
        wanted.add(("auth_revoked", AUTH_SIDE[code]))
    wait_alerts(view["id"], wanted)


def assert_gave_up(case: Case, view: dict[str, Any]) -> None:
    code = FOREVER_CODE[case.stage]
    assert view["status"] == "failed"
    if case.stage in PLANNING_STAGES:
        assert view["error_code"] == code
        assert f"gave up planning after {ATTEMPTS} attempts" in view["error"]
        return
    gave_up = [row for row in failure_rows(view["id"]) if row["error_code"] == code]
    assert gave_up and all(f"gave up after {ATTEMPTS} attempts" in row["message"] for row in gave_up)
    assert view["failed"] + view["invalid"] == view["planned"]
    assert all(chunk.attempt == ATTEMPTS for chunk in chunks_of(view["id"]) if chunk.status == "failed")
    wait_alerts(view["id"], {("run_failed", "runs")})
