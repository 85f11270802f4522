"""A sandbox world for backfill tests: TLS sandbox servers, a migrated ledger, one connection, and a dispatcher
that runs the real plan and chunk code in this process (real SalesforceClient and registry provider)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from config.settings import get_settings, reset_settings
from worker.backfill.options import BackfillOptions, start_backfill
from worker.ledger.db import session_scope
from worker.ledger.field_changes import field_changes
from worker.ledger.models import Chunk
from worker.ledger.views import show_run
from worker.sandbox.demo import create_connection
from worker.sandbox.stack import Stack, sandbox_stack
from worker.sync.chunk import sync_chunk
from worker.sync.plan import plan_run
from worker.sync.runner import start_run

NAME = "demo"


@dataclass
class InlineDispatcher:
    """Queues plan and chunk tasks like Celery would and runs them here when asked, in order."""

    plans: list[int] = field(default_factory=list)
    chunks: list[int] = field(default_factory=list)
    on_sync: Callable[[list[int]], None] | None = None
    results: list[str] = field(default_factory=list)

    def plan(self, run_id: int) -> None:
        self.plans.append(run_id)

    def sync(self, chunk_ids: Any) -> None:
        self.chunks.extend(chunk_ids)
        if self.on_sync is not None:
            self.on_sync(list(chunk_ids))

    def run_closed(self, run_id: int) -> None:
        return None

    def run_plans(self) -> None:
        while self.plans:
            self.results.append(plan_run(self.plans.pop(0), self, settings=get_settings()))

    def run_chunks(self) -> None:
        while self.chunks:
            self.results.append(sync_chunk(self.chunks.pop(0), settings=get_settings()))

    def drain(self) -> None:
        while self.plans or self.chunks:
            self.run_plans()
            self.run_chunks()


@dataclass
class World:
    stack: Stack
    dispatch: InlineDispatcher

    def connect(
        self, *, chunk_size: int = 200, mapping: dict[str, dict[str, str]] | None = None, **salesforce: Any
    ) -> None:
        data = self.stack.spec_data(NAME, requests_per_second=2000, burst=200)  # not what these tests measure
        data["sync"] = {"chunk_size": chunk_size}
        data["salesforce"].update(salesforce)
        if mapping is not None:
            data["mapping"] = mapping
        secrets = {
            "salesforce_client_secret": self.stack.client_secret,
            "registry_token": self.stack.registry_token,
        }
        create_connection(data, secrets)

    def backfill(self, options: BackfillOptions, *, drain: bool = True) -> dict[str, Any]:
        run_id = start_backfill(NAME, options, actor="tester", dispatch=self.dispatch)
        return self.finish(run_id, drain)

    def manual(self, *, drain: bool = True) -> dict[str, Any]:
        return self.finish(start_run(NAME, self.dispatch, triggered_by="tester"), drain)

    def finish(self, run_id: int, drain: bool = True) -> dict[str, Any]:
        if drain:
            self.dispatch.drain()
        return self.view(run_id)

    @staticmethod
    def view(run_id: int) -> dict[str, Any]:
        with session_scope() as session:
            view = show_run(session, run_id)
            view["samples"] = field_changes(session, run_id, samples=True)
            view["chunk_states"] = sorted(
                session.execute(select(Chunk.status).where(Chunk.run_id == run_id)).scalars()
            )
        return view

    def patches(self) -> list[Any]:
        return [r for r in self.stack.salesforce.api_requests() if r.method == "PATCH"]


@contextmanager
def open_world(
    directory: Path, monkeypatch: pytest.MonkeyPatch, n: int, **stack_options: Any
) -> Iterator[World]:
    """The sandbox stack, trusted through SSL_CERT_FILE, and a local (in-process) shared state."""
    with sandbox_stack(directory, n, **stack_options) as stack:
        for name, value in stack.trust_env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("REGSYNC_SHARED_STATE", "local")
        reset_settings()
        yield World(stack, InlineDispatcher())
