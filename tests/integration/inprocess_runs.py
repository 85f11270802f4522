"""Helpers (not a test module): a sandbox connection in the ledger, and a run driven in this process.

The planner and chunk syncs are the production functions with the real Salesforce and registry clients over
TLS; only the transport of the task messages is replaced by a list, so a test decides when chunks run (one by
one, or on several threads at once) without starting Celery workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from config.settings import get_settings, reset_settings
from worker.connections.apply import apply_connection
from worker.connections.secrets import set_secret
from worker.connections.spec import parse_spec
from worker.ledger import runs
from worker.ledger.db import reset_engines, session_scope
from worker.ledger.models import RunKind
from worker.ledger.views import show_run
from worker.sandbox.stack import Stack
from worker.sandbox.tls import RecordedRequest
from worker.sync.chunk import sync_chunk
from worker.sync.plan import plan_run


class ListDispatcher:
    """Collects what would be sent to Celery."""

    def __init__(self) -> None:
        self.plans: list[int] = []
        self.chunks: list[int] = []

    def plan(self, run_id: int) -> None:
        self.plans.append(run_id)

    def sync(self, chunk_ids: Sequence[int]) -> None:
        self.chunks.extend(chunk_ids)

    def run_closed(self, run_id: int) -> None:
        return None

    def take_chunks(self) -> list[int]:
        taken, self.chunks = self.chunks, []
        return taken


def use_world(monkeypatch: pytest.MonkeyPatch, stack: Stack, redis_url: str | None) -> None:
    """Trust the sandbox CA and keep shared state in ``redis_url`` (or in this process when None)."""
    for name, value in stack.trust_env().items():
        monkeypatch.setenv(name, value)
    if redis_url is None:
        monkeypatch.setenv("REGSYNC_SHARED_STATE", "local")
    else:
        monkeypatch.setenv("REGSYNC_SHARED_STATE", "redis")
        monkeypatch.setenv("REGSYNC_REDIS_URL", redis_url)
    reset_settings()
    reset_engines()


def install_connection(stack: Stack, spec_data: dict[str, Any]) -> int:
    """Apply the connection and store its two secrets; returns the connection id."""
    spec = parse_spec(spec_data)
    with session_scope() as session:
        result = apply_connection(session, spec, "test-admin")
    with session_scope() as session:
        set_secret(session, spec.name, "salesforce_client_secret", stack.client_secret, "test-admin")
        set_secret(session, spec.name, "registry_token", stack.registry_token, "test-admin")
    return int(result.connection_id)


def start_run(connection_id: int, dispatch: ListDispatcher) -> int:
    """Create a manual run and plan it here; its chunks wait in ``dispatch``."""
    with session_scope() as session:
        run_id = runs.create_run(session, connection_id, kind=RunKind.MANUAL, triggered_by="test").id
    assert plan_run(run_id, dispatch, settings=get_settings()) == "planned"
    return run_id


def sync_all(chunk_ids: Sequence[int], threads: int = 1) -> list[str]:
    """Run chunks as workers would (``threads`` at a time); what each returned, in order."""
    settings = get_settings()
    if threads == 1:
        return [sync_chunk(chunk_id, settings=settings) for chunk_id in chunk_ids]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda chunk_id: sync_chunk(chunk_id, settings=settings), chunk_ids))


def view(run_id: int) -> dict[str, Any]:
    with session_scope() as session:
        return show_run(session, run_id)


def registry_numbers(requests: Sequence[RecordedRequest]) -> list[str]:
    """Every org number the registry was asked about, once per time it was asked (Proff, brreg single and batch)."""
    numbers: list[str] = []
    for request in requests:
        batch = request.query.get("organisasjonsnummer")
        if batch:
            numbers += [n for value in batch for n in value.split(",") if n]
        else:
            numbers.append(request.path.rsplit("/", 1)[-1])
    return numbers
