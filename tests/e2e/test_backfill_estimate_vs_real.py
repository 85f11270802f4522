"""`regsync backfill --estimate`, then the very same backfill for real: the real calls stay within the estimate.

Both commands run as subprocesses; the backfill runs on a real ``celery worker`` process (Redis broker,
PostgreSQL ledger) against the TLS sandbox org and registry. The truth is what the sandboxes received, split
by the ledger's ``queued_at`` into the command's own calls (token, describe for ``--where``) and the run's:
queries (``query`` + ``queryMore``, or ``Id IN`` queries for an ids file), re-reads (sObject Collections GET),
writes (PATCH) and registry requests. Each must be within its bound, every Salesforce call the run makes must be
within ``crm_calls_max`` (a call of a kind the estimate does not know would break it), and the ledger's counts
must equal the sandboxes' logs. The query bound is exercised across a page boundary (2,100 Accounts: queryMore).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import RegsyncEnv
from tests.integration.celery_cluster import (
    REPO_ROOT,
    ClusterEnv,
    celery_cluster,
    cluster_env_for,
)
from worker.ledger.db import session_scope
from worker.ledger.models import Run
from worker.sandbox.demo import create_connection
from worker.sandbox.stack import Stack, sandbox_stack
from worker.sandbox.tls import RecordedRequest

NAME = "estimated"
ACCOUNTS = 2100  # more than one 2,000-record query page
CHUNK_SIZE = 200


@dataclass
class World:
    stack: Stack
    env: ClusterEnv
    directory: Path

    def connect(self, provider: str) -> None:
        data = self.stack.spec_data(NAME, provider, requests_per_second=5000, burst=500)
        data["sync"] = {"chunk_size": CHUNK_SIZE}
        secrets = {"salesforce_client_secret": self.stack.client_secret}
        if provider == "proff":
            secrets["registry_token"] = self.stack.registry_token
        create_connection(data, secrets)

    def regsync(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "worker.cli.main", *args],
            cwd=REPO_ROOT,
            env=self.env.subprocess_env(PYTHONIOENCODING="utf-8"),
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=240,
            check=False,
        )


@pytest.fixture
def world(
    env: RegsyncEnv, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    with sandbox_stack(tmp_path / "sandbox", ACCOUNTS, validation_failures=0) as stack:
        # the worker says "ready." at INFO
        cluster_env = cluster_env_for(env, redis_url, stack, "regsync-estimate", log_level="INFO")
        cluster_env.apply(monkeypatch)
        yield World(stack, cluster_env, tmp_path)


PERMISSION_OBJECTS = {"PermissionSetAssignment", "PermissionSet", "ObjectPermissions", "FieldPermissions"}


def salesforce_kind(request: RecordedRequest) -> str:
    """What one REST API request was, in the estimate's terms."""
    path = request.path.split("/services/data/", 1)[1].split("/", 1)[1]
    if request.method == "PATCH" and path.startswith("composite/sobjects"):
        return "write"
    if request.method == "GET" and path.startswith("composite/sobjects/"):
        return "read"
    if request.method == "GET" and path.startswith("query"):
        sobject = request.query.get("q", [""])[0].split(" FROM ", 1)[-1].split(" ", 1)[0]
        return "check" if sobject in PERMISSION_OBJECTS else "query"  # the run-start least-privilege read
    return f"other {request.method} {path}"


@dataclass(frozen=True)
class Calls:
    """What the sandboxes received, split at the run's ``queued_at``."""

    command: Counter[str]
    run: Counter[str]
    registry: int

    @classmethod
    def since(cls, stack: Stack, sf_seen: int, registry_seen: int, queued_at: float) -> Calls:
        api = [r for r in stack.salesforce.requests[sf_seen:] if r.path.startswith("/services/data/")]
        return cls(
            command=Counter(salesforce_kind(r) for r in api if r.at < queued_at),
            run=Counter(salesforce_kind(r) for r in api if r.at >= queued_at),
            registry=len(stack.registry.requests[registry_seen:]),
        )


def estimate_then_run(world: World, *selection: str) -> tuple[dict[str, Any], dict[str, Any], Calls]:
    """``backfill --estimate --json`` then the same backfill with ``--wait --json``: (estimate, run, calls)."""
    sf_before, registry_before = len(world.stack.salesforce.requests), len(world.stack.registry.requests)
    estimated = world.regsync("backfill", NAME, *selection, "--estimate", "--json")
    assert estimated.returncode == 0, estimated.stderr[-3000:]
    estimate = json.loads(estimated.stdout)["estimate"]
    estimate_api = [r for r in world.stack.salesforce.requests[sf_before:] if r.path.startswith("/services/")]
    counted = [r for r in estimate_api if r.path.startswith("/services/data/") and "q" in r.query]
    assert len(counted) == estimate["count_calls"]  # what it said counting cost is what counting cost
    assert world.stack.registry.requests[registry_before:] == []  # an estimate asks the registry nothing
    assert not any(r.method == "PATCH" for r in estimate_api)

    sf_seen, registry_seen = len(world.stack.salesforce.requests), len(world.stack.registry.requests)
    done = world.regsync("backfill", NAME, *selection, "--wait", "--json", "--actor", "alice")
    assert done.returncode in (0, 1), done.stderr[-3000:]  # 1: the seeded invalid org numbers
    view = json.loads(done.stdout)
    with session_scope() as session:
        queued_at = session.execute(select(Run.queued_at).where(Run.id == view["id"])).scalar_one()
    return estimate, view, Calls.since(world.stack, sf_seen, registry_seen, queued_at.timestamp())


def assert_within(estimate: dict[str, Any], view: dict[str, Any], calls: Calls) -> None:
    run = calls.run
    report = f"estimate={estimate} run={dict(run)} registry={calls.registry} command={dict(calls.command)}"
    print(report)
    assert view["status"] in ("succeeded", "partially_failed"), report
    if not estimate["records_is_upper_bound"]:
        assert view["planned"] == estimate["records"], report
    assert run["query"] <= estimate["query_calls"], report
    assert run["read"] <= estimate["read_calls"], report
    assert run["write"] <= estimate["write_calls_max"], report
    checks = run["check"] + run["other GET sobjects/Account/describe"]  # the run-start check, describes
    assert checks <= estimate["check_calls"] + estimate["describe_calls_max"], report
    assert sum(run.values()) <= estimate["crm_calls_max"], report  # every call of the run, of any kind
    assert calls.registry <= estimate["registry_calls_max"], report
    # The ledger counted what the sandboxes received.
    assert (view["crm_calls"], view["registry_calls"]) == (sum(run.values()), calls.registry), report


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_a_proff_backfill_makes_no_more_calls_than_its_estimate(world: World) -> None:
    world.connect("proff")

    with celery_cluster(world.env, world.directory / "workers", 1):
        estimate, view, calls = estimate_then_run(world)

    assert_within(estimate, view, calls)
    assert calls.run["query"] == estimate["query_calls"] == 2  # query + queryMore: the bound is exact here
    assert calls.run["read"] == view["chunks_total"] <= estimate["read_calls"]
    assert view["updated"] > 0 and calls.run["write"] > 0
    truth = world.stack.truth(world.stack.spec(NAME))
    assert calls.registry == truth.unique_valid_org_numbers  # one call per unique valid number


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_a_filtered_and_an_ids_file_backfill_stay_within_their_estimates(
    world: World, tmp_path: Path
) -> None:
    world.connect("proff")
    ids = [a["Id"] for a in world.stack.dataset.accounts[::7]]  # 300 listed Ids: two Id IN queries
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")

    with celery_cluster(world.env, world.directory / "workers", 1):
        filtered = estimate_then_run(world, "--where", "NumberOfEmployees", ">", "10")
        listed = estimate_then_run(world, "--ids-file", str(ids_file), "--dry-run")

    assert_within(*filtered)
    assert filtered[2].command["other GET sobjects/Account/describe"] >= 1  # the --where check, not the run
    assert_within(*listed)
    assert listed[0]["records_is_upper_bound"] and listed[0]["query_calls"] == 2
    assert listed[2].run["write"] == 0 and listed[0]["write_calls_max"] == 0  # a dry run writes nothing


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_a_brreg_backfill_makes_no_more_registry_calls_than_its_estimate(world: World) -> None:
    world.connect("brreg")

    with celery_cluster(world.env, world.directory / "workers", 1):
        estimate, view, calls = estimate_then_run(world)

    assert_within(estimate, view, calls)
