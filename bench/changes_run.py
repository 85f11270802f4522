"""The changes benchmark: one changes run over a big sandbox org, through real workers, measured.

Set-up (none of it timed): a sandbox world in its own process (``python -m bench.world_server``) whose seeded
Accounts were created an hour ago (their SystemModstamp too); the key index filled as a full plan leaves it,
seeded directly (``keyindex.refresh_from_plan`` in planning-page batches of 2,000, the last one moving the
``crm:Account`` watermark to the set-up's start, after the records were created); the Proff feed scripted
(bench.changes_feed) and its watermark set to today, before the items. Then two ``celery worker`` processes
with every REGSYNC_* setting at its default, the registry limited to R, and one run with mode ``changes``
started as the changes-run test does; the ledger polled until it is final.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from bench.machine import REPO_ROOT
from bench.pump_run import PumpSetup, World, _env
from bench.services import Services, environment
from bench.sync_run import BOUND_DATASET
from bench.workers import celery_workers

#: Seeded records' age: well beyond the SystemModstamp overlap (worker.crm.soql.MODSTAMP_OVERLAP, 2 minutes).
CREATED_AGO_S = 3600.0
INDEX_BATCH = 2_000  # a planning page


@dataclass(frozen=True, slots=True)
class ChangesSetup:
    accounts: int = 1_000_000
    changes: int = 3_000
    rps: float = 10.0
    registry_latency_s: float = 0.05
    salesforce_latency_s: float = 0.0
    workers: int = 2
    timeout_s: float = 1800.0


@dataclass(frozen=True, slots=True)
class ChangesResult:
    setup: ChangesSetup
    view: dict[str, Any]
    wall_s: float
    plan_s: float
    script: dict[str, Any]
    registry_feed: int
    registry_total: int
    statuses: dict[int, int]
    salesforce: dict[str, int]
    salesforce_queries: dict[str, int]
    seed_s: float
    index_s: float
    index_rows: int
    watermark: str | None
    peak_rss_mb: float


class ChangesWorld(World):
    """The world server seeded for this benchmark: records created an hour ago, no full-run truth."""

    def __init__(self, setup: ChangesSetup, directory: Path) -> None:
        command = [sys.executable, "-m", "bench.world_server", "--accounts", str(setup.accounts)]
        command += ["--dir", str(directory), "--rps", str(setup.rps), "--no-truth"]
        command += ["--created-ago", str(CREATED_AGO_S)]
        self.popen = subprocess.Popen(
            command, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.ready = self._read()


def _index_the_crm(connection_id: int, accounts: int) -> int:
    """What a full plan leaves: every record's key, and the crm:Account watermark at the plan's start."""
    from worker.changes import keyindex
    from worker.ledger.db import session_scope
    from worker.ledger.models import utcnow
    from worker.sandbox.dataset import iter_accounts

    started, rows = utcnow(), 0
    records = iter_accounts(accounts, **BOUND_DATASET)  # the world's seed and options: the same records
    while batch := [
        (a["Id"], a.get("Org_Number__c"), a.get("BillingCountryCode")) for a in islice(records, INDEX_BATCH)
    ]:
        rows += len(batch)
        last = rows >= accounts
        with session_scope() as session:
            keyindex.refresh_from_plan(
                session, connection_id, "Account", batch, complete_since=started if last else None
            )
    return rows


def _feed_watermark(connection_id: int, position: str) -> None:
    from worker.changes.models import Watermark
    from worker.ledger.db import session_scope

    with session_scope() as session:
        session.add(
            Watermark(connection_id=connection_id, source="feed:proff:NO", position=position, details={})
        )


def _start_and_wait(connection_id: int, timeout_s: float) -> tuple[dict[str, Any], float, float]:
    """A run with mode ``changes``, planned by the workers; (final view, wall s, plan s)."""
    from worker.infra.dispatch import CeleryDispatcher
    from worker.ledger import runs
    from worker.ledger.db import session_scope
    from worker.ledger.models import Run, RunKind, RunMode, RunStatus
    from worker.ledger.views import show_run

    started = time.monotonic()
    with session_scope() as session:
        run = runs.create_run(session, connection_id, kind=RunKind.MANUAL, triggered_by="bench")
        run.mode = RunMode.CHANGES.value
        session.flush()
        run_id = run.id
    CeleryDispatcher().plan(run_id)
    plan_s: float | None = None
    while time.monotonic() - started < timeout_s:
        with session_scope() as session:
            current = session.get(Run, run_id)
            assert current is not None
            planned, status = current.planned_complete, current.status
            view = show_run(session, run_id) if RunStatus(status).final else None
        now = time.monotonic() - started
        plan_s = now if planned and plan_s is None else plan_s
        if view is not None:
            return view, now, plan_s if plan_s is not None else now
        time.sleep(0.1)
    raise RuntimeError(f"changes run {run_id} not final after {timeout_s:.0f} s")


def _watermark(connection_id: int, source: str) -> str | None:
    from sqlalchemy import select

    from worker.changes.models import Watermark
    from worker.ledger.db import session_scope

    with session_scope() as session:
        return session.scalar(
            select(Watermark.position).where(
                Watermark.connection_id == connection_id, Watermark.source == source
            )
        )


def _connection_id(name: str) -> int:
    from sqlalchemy import select

    from worker.ledger.db import session_scope
    from worker.ledger.models import Connection

    with session_scope() as session:
        found = session.scalar(select(Connection.id).where(Connection.name == name))
    assert found is not None
    return int(found)


def run_changes(setup: ChangesSetup, services: Services, workdir: Path, say: Any = print) -> ChangesResult:
    """Set up, run and measure (see the module docstring)."""
    from worker.sandbox.demo import create_connection

    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as scope:
        started = time.monotonic()
        world = ChangesWorld(setup, workdir / "world")
        scope.callback(world.close)
        seed_s, ready = time.monotonic() - started, world.ready
        say(f"changes: sandbox org of {setup.accounts:,} Accounts seeded in {seed_s:.0f} s")
        db_url = scope.enter_context(services.database("changes"))
        redis_url = scope.enter_context(services.redis_db())
        pump = PumpSetup(label="changes", accounts=setup.accounts, salesforce_latency_s=0.0, rps=setup.rps)
        scope.enter_context(environment(_env(db_url, redis_url, ready["ca_bundle"], pump)))
        secrets = {
            "salesforce_client_secret": ready["client_secret"],
            "registry_token": ready["registry_token"],
        }
        create_connection(ready["spec_data"], secrets)
        connection_id = _connection_id(ready["spec_data"]["name"])
        started = time.monotonic()
        index_rows = _index_the_crm(connection_id, setup.accounts)
        index_s = time.monotonic() - started
        say(f"changes: key index of {index_rows:,} records stored in {index_s:.0f} s")
        script = world.ask({"cmd": "script_feed", "total": setup.changes})
        _feed_watermark(connection_id, script["position"])
        say(f"changes: feed scripted: {json.dumps(script['kinds'])}")
        workers = scope.enter_context(celery_workers(setup.workers, workdir / "workers"))
        world.ask(
            {
                "cmd": "configure",
                "salesforce_latency_s": setup.salesforce_latency_s,
                "registry_latency_s": setup.registry_latency_s,
                "limit_rps": setup.rps,
            }
        )
        view, wall_s, plan_s = _start_and_wait(connection_id, setup.timeout_s)
        time.sleep(0.3)  # replies still being written when the ledger already said "done"
        seen = world.ask({"cmd": "report"})
        peak_mb = max(worker.peak_rss_mb() for worker in workers)
        watermark = _watermark(connection_id, "feed:proff:NO")
    return ChangesResult(
        setup=setup,
        view=view,
        wall_s=wall_s,
        plan_s=plan_s,
        script=script,
        registry_feed=int(seen["registry_feed"]),
        registry_total=len(seen["registry_times"]),
        statuses={int(k): v for k, v in seen["statuses"].items()},
        salesforce=seen["salesforce"],
        salesforce_queries=seen["salesforce_queries"],
        seed_s=seed_s,
        index_s=index_s,
        index_rows=index_rows,
        watermark=watermark,
        peak_rss_mb=peak_mb,
    )
