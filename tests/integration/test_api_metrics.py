"""Acceptance 4 of the HTTP API: /metrics exposes the series, and their values change during a run.

A real Celery worker *process* (prefork) syncs a small sandbox org over TLS; it and the web app share a
PROMETHEUS_MULTIPROC_DIR, so the web process's /metrics adds up the worker's samples (how production runs it:
see the Procfile). Ledger series (runs by status, Salesforce API usage, open alerts) are read at scrape time.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import claimed_redis
from tests.integration.api_world import ledger_env
from worker.api.app import create_app
from worker.api.throttle import MemoryThrottle
from worker.sandbox.stack import Stack, sandbox_stack

REPO = Path(__file__).resolve().parents[2]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


METRICS_TOKEN = "metrics-token-for-the-test"


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape_settled(client: TestClient, chunks: int, timeout_s: float = 10.0) -> Samples:
    """A scrape once every chunk's duration has been observed.

    A chunk observes its duration just after its ledger commit, and the last commit is what ends the run, so a
    scrape taken the moment the run ends can miss the last chunk by a few milliseconds. Poll, with a deadline.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        samples = scrape(client)
        done = value(samples, "regsync_chunk_duration_seconds_count", outcome="done")
        if done >= chunks or time.monotonic() > deadline:
            return samples
        time.sleep(0.1)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Stack, dict[str, str]]]:
    prom = tmp_path / "prometheus"
    prom.mkdir()
    queue = f"regsync-metrics-{secrets.token_hex(4)}"
    with claimed_redis() as redis_url, sandbox_stack(tmp_path, 300, validation_failures=2) as stack:
        extra = {"REGSYNC_REDIS_URL": redis_url, "REGSYNC_BROKER_URL": redis_url, "REGSYNC_QUEUE": queue}
        extra["REGSYNC_METRICS_TOKEN"] = METRICS_TOKEN
        with ledger_env(**extra):
            for name, val in {**stack.trust_env(), "PROMETHEUS_MULTIPROC_DIR": str(prom)}.items():
                monkeypatch.setenv(name, val)
            from config.celery import reset_app

            reset_app()
            from worker.sandbox import demo

            spec = stack.spec_data("alpha", requests_per_second=200, burst=20)
            secrets_ = {
                "salesforce_client_secret": stack.client_secret,
                "registry_token": stack.registry_token,
            }
            demo.create_connection(spec, secrets_)
            yield stack, dict(os.environ)
            reset_app()


@pytest.fixture
def worker_process(world: tuple[Stack, dict[str, str]], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    _stack, environ = world
    log = tmp_path / "worker.log"
    command = [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool", "prefork", "-c", "1"]
    command += ["-Q", environ["REGSYNC_QUEUE"], "--loglevel", "INFO", "--without-mingle", "--without-gossip"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=environ, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while b"ready." not in log.read_bytes():
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)
    yield process
    process.send_signal(signal.SIGQUIT)  # cold shutdown: nothing is running any more
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def test_metrics_change_during_a_run_in_a_worker_process_and_health_sees_it(
    world: tuple[Stack, dict[str, str]], worker_process: subprocess.Popen[bytes]
) -> None:
    from worker.infra.dispatch import CeleryDispatcher
    from worker.sync.runner import start_run, wait_for

    client = TestClient(create_app(throttle=MemoryThrottle(10_000)))
    before = scrape(client)

    run_id = start_run("alpha", CeleryDispatcher(), triggered_by="metrics-test")
    final = wait_for(run_id, lambda _view: None, timeout_s=90)
    assert final["status"] == "partially_failed", final  # two records refused by a "validation rule"
    chunks = final["chunks_total"]
    after = scrape_settled(client, chunks)

    assert value(before, "regsync_runs", status="partially_failed", kind="manual") == 0
    assert value(after, "regsync_runs", status="partially_failed", kind="manual") == 1
    assert value(after, "regsync_ledger_up") == 1
    assert total(before, "regsync_chunk_duration_seconds_count") == 0
    assert value(after, "regsync_chunk_duration_seconds_count", outcome="done") == chunks
    assert value(after, "regsync_chunk_duration_seconds_sum", outcome="done") > 0
    registry_ok = value(after, "regsync_registry_requests_total", provider="proff", status="200")
    assert value(before, "regsync_registry_requests_total", provider="proff", status="200") == 0
    assert registry_ok == final["registry_calls"] > 0
    waits = value(after, "regsync_ratelimit_wait_seconds_count", provider="proff")
    assert waits == total(after, "regsync_registry_requests_total", provider="proff") > 0
    assert value(before, "regsync_salesforce_api_used", connection="alpha") == 0
    assert value(after, "regsync_salesforce_api_used", connection="alpha") == final["api_used_after"] > 0
    assert value(after, "regsync_salesforce_api_limit", connection="alpha") == final["api_limit"] > 0
    assert (("regsync_alerts_open", (("kind", "run_failed"),))) in after

    workers = client.get("/v1/health").json()["workers"]  # the worker process's heartbeat, through Redis
    assert workers["alive"] == 1 and workers["newest_age_s"] < 15
