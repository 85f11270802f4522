"""Helpers (not a test module) for changes runs driven in this process: the sandbox world of backfill_world, a
connection on either registry, a full run that fills the key index, and a ``changes`` run planned and synced
here with the production planner and chunk code over TLS."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.integration.backfill_world import NAME, World, open_world
from worker.changes.models import ChangeEvent, Watermark
from worker.company import Company, CompanyStatus
from worker.connections.apply import load_connection
from worker.errors import InvalidOrgNumber
from worker.ledger import runs
from worker.ledger.db import session_scope
from worker.ledger.models import RunKind, RunMode
from worker.orgnr import normalise
from worker.sandbox.demo import create_connection
from worker.sandbox.stack import DEMO_MAPPING

Key = tuple[str, str]


@dataclass
class ChangesWorld:
    world: World
    provider: str

    @property
    def sf(self) -> Any:
        return self.world.stack.salesforce

    @property
    def registry(self) -> Any:
        return self.world.stack.registry

    def connection_id(self) -> int:
        with session_scope() as session:
            return int(load_connection(session, NAME)[0].id)

    def full_run(self) -> dict[str, Any]:
        return self.world.manual()

    def changes_run(self) -> dict[str, Any]:
        """Queue a ``changes`` run, plan it and sync its chunks here; its view."""
        with session_scope() as session:
            run = runs.create_run(session, self.connection_id(), kind=RunKind.MANUAL, triggered_by="test")
            run.mode = RunMode.CHANGES.value
            run_id = run.id
        self.world.dispatch.plan(run_id)
        return self.world.finish(run_id)

    def held(self) -> dict[Key, list[str]]:
        """The CRM's records per valid key, as the sandbox org holds them now."""
        found: dict[Key, list[str]] = {}
        for record_id, account in self.sf.snapshot().items():
            country = str(account.get("BillingCountryCode") or "")
            try:
                key = (country, normalise(country, account.get("Org_Number__c")))
            except InvalidOrgNumber:
                continue
            found.setdefault(key, []).append(record_id)
        return found

    def singles(self, count: int) -> list[Company]:
        """``count`` active companies each held by exactly one record (a change has one record to touch)."""
        held = self.held()
        companies = sorted(
            (c for c in self.world.stack.dataset.companies if c.status is CompanyStatus.ACTIVE),
            key=lambda c: c.org_number,
        )
        chosen = [c for c in companies if len(held.get((c.country, c.org_number), [])) == 1]
        assert len(chosen) >= count, "the dataset holds too few singly held active companies"
        return chosen[:count]

    def record_of(self, company: Company) -> str:
        return self.held()[(company.country, company.org_number)][0]

    def watermark(self, source: str) -> str | None:
        with session_scope() as session:
            return session.scalar(select(Watermark.position).where(Watermark.source == source))

    def events(self, run_id: int | None = None) -> list[ChangeEvent]:
        with session_scope() as session:
            query = select(ChangeEvent).order_by(ChangeEvent.id)
            if run_id is not None:
                query = query.where(ChangeEvent.run_id == run_id)
            rows = list(session.scalars(query))
            session.expunge_all()
            return rows


@contextmanager
def changes_world(
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
    provider: str,
    *,
    n: int = 120,
    mapping: dict[str, dict[str, str]] | None = None,
) -> Iterator[ChangesWorld]:
    """A sandbox world with one ``provider`` connection (no validation failures)."""
    with open_world(directory, monkeypatch, n, validation_failures=0) as world:
        data = world.stack.spec_data(NAME, provider, requests_per_second=2000, burst=200)
        data["sync"] = {"chunk_size": 50}
        data["mapping"] = mapping or DEMO_MAPPING
        secrets = {
            "salesforce_client_secret": world.stack.client_secret,
            "registry_token": world.stack.registry_token,
        }
        create_connection(data, secrets)
        yield ChangesWorld(world, provider)


def renamed(company: Company, suffix: str = " Endret AS") -> Company:
    return company.model_copy(update={"name": (company.name or "") + suffix})
