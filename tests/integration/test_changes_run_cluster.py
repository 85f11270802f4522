"""Issue 14, acceptance 1 (exactly once): a changes run through real ``celery worker`` processes, PostgreSQL and
Redis, over a sandbox org of 20,000 Accounts (as the issue asks; about 25 s on this 2-core machine) and a scripted
brreg feed of 3,000 changes. The planner's worker is SIGKILLed inside a feed page's transaction
(the test holds the watermark row locked, so the page's chunks and events are written but not committed); the
sweeper resends the plan, and the run still applies every change that touches a mapped field of a company in
the CRM exactly once, writes nothing else, leaves those records as a full run would, and moves the watermark to
the last id.
"""

from __future__ import annotations

import copy
import datetime as dt
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from tests.conftest import RegsyncEnv
from tests.integration.celery_cluster import (
    ClusterEnv,
    celery_cluster,
    cluster_env_for,
    install_connection,
    sweeper_loop,
)
from worker.changes import keyindex
from worker.changes.models import ChangeEvent, ChangeOutcome, Watermark
from worker.company import Company, CompanyStatus
from worker.connections.spec import ConnectionSpec
from worker.errors import InvalidOrgNumber
from worker.infra.dispatch import CeleryDispatcher
from worker.ledger import runs
from worker.ledger.db import session_scope
from worker.ledger.models import Connection, Run, RunKind, RunMode, utcnow
from worker.orgnr import normalise
from worker.sandbox.dataset import _no_check
from worker.sandbox.registry import registry_view
from worker.sandbox.stack import Stack, sandbox_stack
from worker.sync.policies import plan_record
from worker.sync.runner import wait_for

CONNECTION = "changes"
SOURCE = "feed:brreg:NO"
N_ACCOUNTS = 20_000
Key = tuple[str, str]


@dataclass
class World:
    stack: Stack
    spec: ConnectionSpec
    env: ClusterEnv
    originals: dict[str, dict[str, Any]]
    directory: Path
    connection_id: int


@pytest.fixture
def make_world(
    env: RegsyncEnv, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., World]]:
    contexts: list[Any] = []

    def build(n: int) -> World:
        context = sandbox_stack(tmp_path / "sandbox", n)
        stack = context.__enter__()
        contexts.append(context)
        world_env = cluster_env_for(env, redis_url, stack, log_level="INFO", registry_pump=True)
        world_env.apply(monkeypatch)
        spec = install_connection(
            stack, stack.spec_data(CONNECTION, "brreg", requests_per_second=2000, burst=200)
        )
        with session_scope() as session:
            connection_id = session.scalar(select(Connection.id).where(Connection.name == CONNECTION))
        originals = {a["Id"]: copy.deepcopy(dict(a)) for a in stack.dataset.accounts}
        assert connection_id is not None
        return World(stack, spec, world_env, originals, tmp_path, connection_id)

    yield build
    for context in reversed(contexts):
        context.__exit__(None, None, None)


def key_of(account: dict[str, Any]) -> Key | None:
    country = str(account.get("BillingCountryCode") or "")
    try:
        return country, normalise(country, account.get("Org_Number__c"))
    except InvalidOrgNumber:
        return None


def records_by_key(world: World) -> dict[Key, list[str]]:
    found: dict[Key, list[str]] = {}
    for record_id, account in world.originals.items():
        key = key_of(account)
        if key is not None:
            found.setdefault(key, []).append(record_id)
    return found


def index_the_crm(world: World) -> None:
    """What a full plan leaves: the key index of every record and the crm:Account watermark."""
    rows = [(rid, a.get("Org_Number__c"), a.get("BillingCountryCode")) for rid, a in world.originals.items()]
    with session_scope() as session:
        keyindex.refresh_from_plan(session, world.connection_id, "Account", rows, complete_since=utcnow())


@dataclass
class Script:
    mapped: dict[Key, str]  # company -> how it changed (name, deleted, removed, unknown)
    after: dict[Key, Company]  # what the registry now says of each mapped company
    unmapped: set[Key]
    new: set[Key]
    last_id: int
    total: int


def new_numbers(taken: set[Key], n: int) -> list[str]:
    found: list[str] = []
    body = 98_000_000
    while len(found) < n:
        body += 1
        check = _no_check(str(body))
        number = f"{body}{check}"
        if check != 10 and ("NO", number) not in taken:
            found.append(number)
    return found


def script_feed(world: World) -> Script:
    """3,000 changes: 1,500 mapped name changes, 500 unmapped (founding date), 150 deleted, 150 removed,
    200 unknown, 500 new units the CRM does not hold."""
    registry = world.stack.registry
    held = records_by_key(world)
    companies = {(c.country, c.org_number): c for c in world.stack.dataset.companies}
    candidates = sorted(k for k in held if k in companies and companies[k].status is CompanyStatus.ACTIVE)
    rng = random.Random(14)
    chosen = rng.sample(candidates, 2_500)
    plan = ["name"] * 1_500 + ["unmapped"] * 500 + ["deleted"] * 150 + ["removed"] * 150 + ["unknown"] * 200
    ids: list[int | None] = []
    mapped: dict[Key, str] = {}
    unmapped: set[Key] = set()
    after: dict[Key, Company] = {}
    for key, what in zip(chosen, plan, strict=True):
        company = companies[key]
        if what == "name":
            ids.append(
                registry.script_change(
                    company.model_copy(update={"name": (company.name or "") + " Endret AS"})
                ).brreg_id
            )
        elif what == "unmapped":
            founded = dt.date(1990, 1, 1) if company.founded != dt.date(1990, 1, 1) else dt.date(1991, 1, 1)
            ids.append(registry.script_change(company.model_copy(update={"founded": founded})).brreg_id)
        elif what == "deleted":
            ids.append(registry.script_delete(*key).brreg_id)
        elif what == "removed":
            ids.append(registry.script_remove(*key).brreg_id)
        else:
            ids.append(registry.script_unknown(key[1]))
        if what == "unmapped":
            unmapped.add(key)
        else:
            mapped[key] = what
            after[key] = _after(company, what)
    new: set[Key] = set()
    for number in new_numbers(set(companies), 500):
        company = Company(
            org_number=number, country="NO", status=CompanyStatus.ACTIVE, name=f"Ny {number} AS"
        )
        ids.append(registry.script_new(company).brreg_id)
        new.add(("NO", number))
    assert all(isinstance(i, int) for i in ids)
    numbers = [int(i) for i in ids if i is not None]
    with session_scope() as session:
        session.add(
            Watermark(
                connection_id=world.connection_id, source=SOURCE, position=str(min(numbers) - 1), details={}
            )
        )
    return Script(mapped, after, unmapped, new, max(numbers), len(numbers))


def _after(company: Company, what: str) -> Company:
    if what == "name":
        return company.model_copy(update={"name": (company.name or "") + " Endret AS"})
    if what == "deleted":
        return company.model_copy(update={"status": CompanyStatus.DELETED})
    if (
        what == "removed"
    ):  # a batch lookup cannot tell removed from never existed: not_found (worker/registry/brreg)
        return Company(org_number=company.org_number, country=company.country, status=CompanyStatus.NOT_FOUND)
    return company


def expected_values(world: World, script: Script) -> dict[str, dict[str, Any]]:
    """Per record of a mapped change: what a full run leaves (its original plus the planned changes)."""
    held = records_by_key(world)
    expected: dict[str, dict[str, Any]] = {}
    for key in script.mapped:
        view = registry_view("brreg", script.after[key])
        for record_id in held[key]:
            original = world.originals[record_id]
            expected[record_id] = {**original, **plan_record(original, view, world.spec.mapping, {}).changes}
    return expected


def start_changes_run(world: World) -> int:
    with session_scope() as session:
        run = runs.create_run(session, world.connection_id, kind=RunKind.MANUAL, triggered_by="test")
        run.mode = RunMode.CHANGES.value
        run_id = run.id
    CeleryDispatcher().plan(run_id)
    return run_id


def planner_waits_on_lock(database_url: str) -> bool:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            query = text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query ILIKE '%watermarks%'"
            )
            return bool(connection.scalar(query))
    finally:
        engine.dispose()


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
@pytest.mark.timeout(240)
def test_changes_run_applies_each_change_once_through_a_killed_planner(
    make_world: Callable[..., World],
) -> None:
    world = make_world(N_ACCOUNTS)
    index_the_crm(world)
    script = script_feed(world)
    expected = expected_values(world, script)
    started = time.monotonic()
    locker = create_engine(world.env.database_url)
    with celery_cluster(world.env, world.directory / "workers", 2) as cluster, sweeper_loop() as sweeper:
        with locker.connect() as lock:
            held = lock.begin()
            lock.execute(text("SELECT id FROM watermarks WHERE source = :s FOR UPDATE"), {"s": SOURCE})
            run_id = start_changes_run(world)
            wait_until(lambda: planner_waits_on_lock(world.env.database_url), 60, "the planner inside a page")
            planner = next(w for w in cluster.workers if "regsync.plan_run[" in w.output())
            planner.kill()
            held.rollback()
        view = wait_for(run_id, lambda _view: None, poll_s=0.2, timeout_s=150)
    locker.dispose()
    elapsed = time.monotonic() - started

    assert view["status"] in ("succeeded", "partially_failed"), view
    assert sweeper.totals().get("plans_resent", 0) >= 1, "the killed planner was never resent"
    current, writes = world.stack.salesforce.snapshot(), world.stack.salesforce.writes
    written = {rid for rid, n in writes.items() if n}
    assert max(writes.values(), default=0) <= 1, "a record was written twice"
    assert written <= set(expected), (
        f"records outside the changes written: {sorted(written - set(expected))[:5]}"
    )
    # The sandbox's validation rule refuses a few records by design: they keep their values and fail.
    refused = set(world.stack.validation_failures) & set(expected)
    assert not refused & written, "a refused record was written"
    wrong = {
        rid: {k: (current[rid].get(k), v) for k, v in want.items() if current[rid].get(k) != v}
        for rid, want in expected.items()
        if rid not in refused
    }
    wrong = {rid: diff for rid, diff in wrong.items() if diff}
    by_key = records_by_key(world)  # once: it normalises every record's org number
    kinds = {rid: what for key, what in script.mapped.items() for rid in by_key[key]}
    assert not wrong, (
        f"{len(wrong)} records differ from a full run's result ({sorted({kinds[r] for r in wrong})}), "
        f"e.g. {list(wrong.items())[:2]}"
    )
    renamed = {rid for key, what in script.mapped.items() if what == "name" for rid in by_key[key]}
    assert renamed - refused <= written, "a mapped name change was not applied"

    with session_scope() as session:
        run = session.get(Run, run_id)
        assert run is not None
        position = session.scalar(
            select(Watermark.position).where(
                Watermark.connection_id == world.connection_id, Watermark.source == SOURCE
            )
        )
        outcomes = dict(
            session.execute(
                select(ChangeEvent.outcome, func.count())
                .where(ChangeEvent.run_id == run_id)
                .group_by(ChangeEvent.outcome)
            ).all()
        )
        planned_per_item = session.execute(
            select(ChangeEvent.item_id, ChangeEvent.record_id, ChangeEvent.field, func.count())
            .where(ChangeEvent.run_id == run_id)
            .group_by(ChangeEvent.item_id, ChangeEvent.record_id, ChangeEvent.field)
            .having(func.count() > 1)
        ).all()
    assert position == str(script.last_id)
    assert run.pump_done, "the registry pump did not finish (it read the chunks' org keys wrongly once)"
    assert run.changes_seen == script.total == 3_000
    assert run.changes_matched == len(script.mapped) + len(script.unmapped)
    assert run.changes_unmapped == len(script.unmapped)
    assert run.planned == len(expected)
    assert run.feed_pages >= 3
    assert not planned_per_item, f"an event recorded twice: {planned_per_item[:3]}"
    assert ChangeOutcome.PLANNED.value not in outcomes, outcomes
    with session_scope() as session:
        failed_records = set(
            session.scalars(
                select(ChangeEvent.record_id).where(
                    ChangeEvent.run_id == run_id, ChangeEvent.outcome == ChangeOutcome.FAILED.value
                )
            )
        )
    assert failed_records == refused, (failed_records, refused)
    assert outcomes.get(ChangeOutcome.UNMAPPED.value) == sum(len(by_key[k]) for k in script.unmapped)
    assert {r.method for r in world.stack.registry.requests} == {"GET"}
    assert "Traceback" not in cluster.output()
    print(
        f"changes run over {N_ACCOUNTS} accounts, 3,000 changes: {elapsed:.1f} s; run {view['duration_s']} s; "
        f"pages {run.feed_pages}, matched {run.changes_matched}, planned {run.planned}, written {len(written)}, "
        f"registry calls {run.registry_calls}, crm calls {run.crm_calls}; events {outcomes}; "
        f"sweeper {sweeper.totals()}"
    )
