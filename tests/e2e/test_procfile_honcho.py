"""Issue 6, acceptance 3: `honcho start` with the Procfile runs a scheduled run end to end, seen through the API.

Everything an operator would do, as they would do it: plain ``honcho start`` runs the whole Procfile against a
fresh ledger (``release`` migrates it, then stands by so honcho keeps web, worker and beat running), the CLI
sets up the connection (file, secrets, schedule, enable) and an API key, beat's tick inserts the run at its
slot, the worker syncs a sandbox org over TLS, and the test only ever looks through the HTTP API (runs, run,
health, /metrics). Last, SIGTERM to honcho stops every process of the set.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import claimed_redis
from worker.sandbox.stack import Stack, sandbox_stack

REPO = Path(__file__).resolve().parents[2]
HONCHO = [sys.executable, "-m", "honcho", "-f", str(REPO / "Procfile")]
WEB_URL = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")
STARTED = re.compile(r"system\s+\| (\w+)\.1 started \(pid=(\d+)\)")
STANDBY = "release.1 | ledger migrated to head; standing by"


def toml(data: dict[str, Any]) -> str:
    """The connection file for ``data`` (tables of scalars; a table of tables becomes inline tables)."""

    def scalar(value: Any) -> str:
        if isinstance(value, dict):
            return "{ " + ", ".join(f"{k} = {scalar(v)}" for k, v in value.items()) + " }"
        return json.dumps(value)

    lines = [f"{key} = {scalar(value)}" for key, value in data.items() if not isinstance(value, dict)]
    for table, values in ((k, v) for k, v in data.items() if isinstance(v, dict)):
        lines += ["", f"[{table}]", *(f"{key} = {scalar(value)}" for key, value in values.items())]
    return "\n".join(lines) + "\n"


def run(args: list[str], environ: dict[str, str], cwd: Path, stdin: str | None = None) -> str:
    done = subprocess.run(
        args, input=stdin, capture_output=True, text=True, cwd=cwd, env=environ, timeout=120, check=False
    )
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
    return done.stdout


def next_slot(lead_s: int = 15) -> dt.datetime:
    """The first whole minute at least ``lead_s`` from now (UTC): the CLI has enabled the schedule by then."""
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=lead_s)
    return soon.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)


@pytest.fixture
def world(pg_url: str, tmp_path: Path) -> Iterator[tuple[Stack, dict[str, str]]]:
    from cryptography.fernet import Fernet

    with claimed_redis() as redis_url, sandbox_stack(tmp_path, 120, validation_failures=0) as stack:
        prometheus = tmp_path / "prometheus"
        prometheus.mkdir()
        environ = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("REGSYNC_") or k.startswith("REGSYNC_TEST")
        }
        environ |= stack.trust_env() | {
            "REGSYNC_DATABASE_URL": pg_url,
            "REGSYNC_BROKER_URL": redis_url,
            "REGSYNC_REDIS_URL": redis_url,
            "REGSYNC_SECRET_KEY": Fernet.generate_key().decode(),
            "REGSYNC_ACTOR": "ops@example.com",
            "REGSYNC_METRICS_PUBLIC": "true",  # closed by default; this test scrapes like an open Prometheus
            "PROMETHEUS_MULTIPROC_DIR": str(prometheus),
            "PYTHONUNBUFFERED": "1",
            # honcho runs in the test's directory (beat writes its schedule file there, not in the checkout)
            "ALEMBIC_CONFIG": str(REPO / "alembic.ini"),
            # as in an activated virtualenv: the Procfile names alembic, uvicorn and celery by name
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        yield stack, environ


def set_up(stack: Stack, environ: dict[str, str], work: Path) -> tuple[str, dt.datetime]:
    """The CLI: connection, secrets, an API key, a schedule with a slot soon, enable.

    Returns the API key and the slot. The slot is chosen last: enabling forgets slots that already passed.
    """
    regsync = [sys.executable, "-m", "worker.cli.main"]
    (work / "alpha.toml").write_text(toml(stack.spec_data("alpha", requests_per_second=200, burst=20)))
    run([*regsync, "connection", "apply", "alpha.toml"], environ, work)
    run([*regsync, "secret", "set", "alpha", "salesforce_client_secret"], environ, work, stack.client_secret)
    run([*regsync, "secret", "set", "alpha", "registry_token"], environ, work, stack.registry_token)
    created = run([*regsync, "apikey", "create", "-c", "alpha", "--role", "viewer", "--json"], environ, work)
    slot = next_slot()
    run(
        [*regsync, "schedule", "set", "alpha", f"{slot.minute} {slot.hour} * * *", "--tz", "UTC"],
        environ,
        work,
    )
    run([*regsync, "enable", "alpha", "--without-notices"], environ, work)  # no [alerts] channel
    assert dt.datetime.now(dt.UTC) < slot, "setting up took longer than the lead time of the slot"
    return str(json.loads(created)["key"]), slot


@pytest.fixture
def honcho(
    world: tuple[Stack, dict[str, str]], tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """Plain `honcho start` (every Procfile process) in the test's directory, and its log; stopped afterwards."""
    _, environ = world
    log = tmp_path / "honcho.log"
    base_port = 20000 + secrets.randbelow(400) * 100
    with log.open("w") as out:
        process = subprocess.Popen(
            [*HONCHO, "-d", str(tmp_path), "start", "-p", str(base_port)],
            cwd=tmp_path,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    yield process, log
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # honcho passes it on to every process of the set
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def wait_for(what: str, check: Any, log: Path, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    lines = [line for line in log.read_text().splitlines() if '"GET /' not in line]  # not the polling
    raise AssertionError(f"timed out waiting for {what}; honcho log:\n" + "\n".join(lines[-80:]))


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def in_groups(groups: set[int]) -> list[int]:
    """Live processes whose process group is one of ``groups`` (honcho starts each Procfile line in its own)."""
    found: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) in groups and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def test_honcho_runs_a_scheduled_run_end_to_end_visible_through_the_api(
    world: tuple[Stack, dict[str, str]], honcho: tuple[subprocess.Popen[str], Path], tmp_path: Path
) -> None:
    stack, environ = world
    process, log = honcho
    wait_for("release to migrate and stand by", lambda: STANDBY in log.read_text(), log, 90)
    key, slot = set_up(stack, environ, tmp_path)

    base = wait_for("the web process", lambda: (m := WEB_URL.search(log.read_text())) and m.group(1), log, 60)
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=10)

    def finished_scheduled_run() -> dict[str, Any] | None:
        items = api.get("/v1/connections/alpha/runs", params={"kind": "scheduled"}).json()["items"]
        return next((r for r in items if r["status"] in ("succeeded", "partially_failed", "failed")), None)

    # beat ticks every 30 s: the run is inserted at the first tick after the slot, then synced by the worker
    seconds_to_slot = (slot - dt.datetime.now(dt.UTC)).total_seconds()
    listed = wait_for("the scheduled run to finish", finished_scheduled_run, log, seconds_to_slot + 90)
    run = api.get(f"/v1/runs/{listed['id']}").json()
    truth = stack.truth(stack.spec("alpha"))

    outcome = "succeeded" if truth.invalid + truth.failed == 0 else "partially_failed"
    assert (run["status"], run["kind"]) == (outcome, "scheduled"), run
    assert dt.datetime.fromisoformat(run["scheduled_for"]) == slot
    counts = ("planned", "invalid", "updated", "unchanged", "failed")
    assert {k: run[k] for k in counts} == {k: getattr(truth, k) for k in counts}
    assert run["progress"]["percent"] == 100.0 and run["progress"]["chunks_done"] == run["chunks_total"]
    health = api.get("/v1/health")
    assert health.status_code == 200, health.text
    assert health.json()["workers"]["alive"] >= 1 and health.json()["beat"]["alive"] == 1
    metrics = httpx.get(f"{base}/metrics", timeout=10).text
    assert f'regsync_runs{{kind="scheduled",status="{outcome}"}} 1.0' in metrics
    done_chunks = re.search(r'regsync_chunk_duration_seconds_count\{outcome="done"\} (\d+)', metrics)
    assert done_chunks and float(done_chunks.group(1)) == run["chunks_total"], metrics[-3000:]

    # honcho kept the whole set running all along, release included: its shell waits on `regsync standby`
    pids = {name: int(pid) for name, pid in STARTED.findall(log.read_text())}
    assert sorted(pids) == ["beat", "release", "web", "worker"], pids
    assert process.poll() is None and " stopped (rc=" not in log.read_text()
    assert any("standby" in command_line(pid) for pid in in_groups({pids["release"]})), log.read_text()[
        -3000:
    ]

    # SIGTERM to honcho (what Ctrl-C does) stops every process of the set, and their children
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 143
    for name in pids:
        assert f"{name}.1 stopped (rc=" in log.read_text(), name
    wait_for("every process of the set to exit", lambda: not in_groups(set(pids.values())), log, 15)
