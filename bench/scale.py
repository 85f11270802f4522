"""Planning at scale: the planner in a process of its own, against a sandbox org in another, per size.

For each size a fresh sandbox org (``bench.sandbox_server``) is seeded, a connection and a run are created in
a throwaway PostgreSQL ledger, and ``bench.planner_probe`` plans the run, reporting time and VmHWM.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bench.machine import REPO_ROOT
from bench.sandbox_server import SECRET_VARIABLE
from bench.services import Services, environment
from worker.sandbox.stack import CLIENT_ID, DEMO_MAPPING


@dataclass(frozen=True, slots=True)
class ScalePoint:
    accounts: int
    seconds: float
    peak_rss_mib: float
    rss_before_mib: float
    planned: int
    chunks: int
    chunks_sent: int
    crm_calls: int
    sandbox_calls: int
    seeding_s: float
    sandbox_rss_mib: float
    first_half_s: float
    second_half_s: float

    @property
    def per_100k_s(self) -> float:
        return self.seconds / (self.accounts / 100_000)


def _read_json_line(stream: IO[str], what: str) -> dict[str, Any]:
    line = stream.readline()
    if not line:
        raise RuntimeError(f"{what} exited without answering")
    return dict(json.loads(line))


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


@contextmanager
def sandbox_process(
    sizes: list[int], directory: Path, secret: str
) -> Iterator[tuple[list[dict[str, Any]], Any]]:
    """A ``bench.sandbox_server`` child serving one org per size; yields (their ready lines, the Popen).

    After the block the child has printed one stats line per org (read them from ``popen.stats``).
    """
    command = [
        sys.executable,
        "-m",
        "bench.sandbox_server",
        "--accounts",
        ",".join(map(str, sizes)),
        "--dir",
        str(directory),
    ]
    child = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, SECRET_VARIABLE: secret},
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        yield [_read_json_line(child.stdout, "the sandbox server") for _ in sizes], child
    finally:
        if not child.stdin.closed:
            child.stdin.close()
        child.wait(timeout=300)


def _spec_data(name: str, token_url: str) -> dict[str, Any]:
    return {
        "name": name,
        "salesforce": {
            "token_url": token_url,
            "auth": "client_credentials",
            "client_id": CLIENT_ID,
            "api_version": "62.0",
            "object": "Account",
            "org_number_field": "Org_Number__c",
            "country_field": "BillingCountryCode",
        },
        "registry": {"provider": "proff", "base_url": "https://127.0.0.1:9"},  # never called by the planner
        "mapping": DEMO_MAPPING,
        "sync": {"chunk_size": 200},
    }


class _RecordingDispatcher:
    def plan(self, run_id: int) -> None:
        return None

    def sync(self, chunk_ids: Any) -> None:
        return None

    def run_closed(self, run_id: int) -> None:
        return None


def _queue_run(accounts: int, token_url: str, secret: str) -> int:
    from worker.sandbox.demo import create_connection
    from worker.sync.runner import start_run

    name = f"scale-{accounts}"
    create_connection(
        _spec_data(name, token_url), {"salesforce_client_secret": secret, "registry_token": "unused"}
    )
    return start_run(name, _RecordingDispatcher(), triggered_by="bench")


def _probe(run_id: int, ca_bundle: str) -> dict[str, Any]:
    env = {**os.environ, "SSL_CERT_FILE": ca_bundle, "REQUESTS_CA_BUNDLE": ca_bundle}
    done = subprocess.run(
        [sys.executable, "-m", "bench.planner_probe", str(run_id)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"planner probe failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _run_view(run_id: int) -> dict[str, Any]:
    from worker.ledger.db import session_scope
    from worker.ledger.views import show_run

    with session_scope() as session:
        return show_run(session, run_id)


def _plan(ready: dict[str, Any], secret: str) -> tuple[int, dict[str, Any]]:
    run_id = _queue_run(ready["accounts"], ready["token_url"], secret)
    return run_id, _probe(run_id, ready["ca_bundle"])


def _point(
    ready: dict[str, Any], run_id: int, measured: dict[str, Any], stats: dict[str, Any], sandbox_rss: float
) -> ScalePoint:
    view = _run_view(run_id)
    return ScalePoint(
        accounts=ready["accounts"],
        seconds=measured["seconds"],
        peak_rss_mib=measured["peak_rss_mib"],
        rss_before_mib=measured["rss_before_mib"],
        planned=view["planned"],
        chunks=view["chunks_total"],
        chunks_sent=measured["chunks_sent"],
        crm_calls=view["crm_calls"],
        sandbox_calls=stats["api_calls"],
        seeding_s=ready["seconds"],
        sandbox_rss_mib=sandbox_rss,
        first_half_s=measured["first_half_s"],
        second_half_s=measured["second_half_s"],
    )


def plan_sizes(sizes: list[int], workdir: Path) -> list[ScalePoint]:
    """Seed one sandbox org per size (one child process), then plan one run per org, each in a measured child."""
    secret = "bench-" + secrets.token_hex(12)
    with sandbox_process(sizes, workdir / "sandbox", secret) as (orgs, child):
        planned = [_plan(ready, secret) for ready in orgs]
        sandbox_rss = _rss_mib(child.pid)
        assert child.stdin is not None and child.stdout is not None
        child.stdin.close()
        stats = [_read_json_line(child.stdout, "the sandbox server") for _ in sizes]
    return [
        _point(ready, run_id, measured, stat, sandbox_rss)
        for ready, (run_id, measured), stat in zip(orgs, planned, stats, strict=True)
    ]


def run_scale(sizes: list[int], services: Services, workdir: Path) -> list[ScalePoint]:
    """Plan each size once (smallest first) in one throwaway ledger."""
    from worker.connections.secrets import generate_key
    from worker.ledger.migrate import upgrade

    workdir.mkdir(parents=True, exist_ok=True)
    with services.database("scale") as db_url:
        variables = {
            "REGSYNC_DATABASE_URL": db_url,
            "REGSYNC_SECRET_KEY": generate_key(),
            "REGSYNC_ACTOR": "bench",
            "REGSYNC_LOG_LEVEL": "WARNING",
        }
        with environment(variables):
            upgrade(db_url)
            return plan_sizes(sorted(sizes), workdir)
