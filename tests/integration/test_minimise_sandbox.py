"""Minimisation through the sandbox: a dry run counts sole proprietorships' would-be changes as ``withheld`` and
never samples them, and a Salesforce validation message that quotes values is stored masked."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import RegsyncEnv
from tests.integration.backfill_world import World, open_world
from tests.integration.privacy_scan import ledger_text
from worker.backfill.options import BackfillOptions
from worker.errors import InvalidOrgNumber
from worker.ledger.backfill_models import RunFieldChange
from worker.ledger.db import session_scope
from worker.ledger.models import RecordFailure
from worker.orgnr import normalise
from worker.retention.minimise import SOLE_PROPRIETOR_FORMS, mask_values
from worker.sandbox.registry import registry_view

QUOTED = ("Kari Nordmann", "Ola Hansen")
NUMBERS = ("923609016", "12345678")
MESSAGE = f"Name '{QUOTED[0]}' is not allowed for org {NUMBERS[0]}; ask «{QUOTED[1]}» on {NUMBERS[1]}"


@pytest.fixture
def world(env: RegsyncEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with open_world(tmp_path / "sandbox", monkeypatch, 150, validation_failures=2) as found:
        found.connect()
        yield found


def sole_proprietor_ids(world: World) -> set[str]:
    """The accounts whose company the registry shows as a sole proprietorship (ENK and the like)."""
    by_org = world.stack.dataset.by_org_number
    provider = world.stack.spec().registry.provider
    found = set()
    for account in world.stack.dataset.accounts:
        try:
            company = by_org.get(normalise(account["BillingCountryCode"], account["Org_Number__c"]))
        except InvalidOrgNumber:
            continue
        if company is not None and registry_view(provider, company).legal_form in SOLE_PROPRIETOR_FORMS:
            found.add(account["Id"])
    return found


def _field_rows(run_id: int) -> dict[str, tuple[int, int, list[dict[str, Any]]]]:
    with session_scope() as session:
        rows = session.scalars(select(RunFieldChange).where(RunFieldChange.run_id == run_id))
        return {row.field: (row.count, row.withheld, list(row.samples)) for row in rows}


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_a_dry_run_counts_sole_proprietorships_as_withheld_and_never_samples_them(world: World) -> None:
    private = sole_proprietor_ids(world)
    world.stack.salesforce.clear_faults()  # every would-be change is written by the real run below

    dry = world.backfill(BackfillOptions(dry_run=True))
    rows = _field_rows(int(dry["id"]))
    world.manual()

    written = world.stack.salesforce.changes
    counted = Counter(name for change in written for name in change.changed)
    withheld = Counter(name for change in written if change.record_id in private for name in change.changed)
    assert sum(withheld.values()) >= 3 and len(private) >= 5  # the dataset has sole proprietorships to hide
    assert {name: row[0] for name, row in rows.items()} == dict(counted)
    assert {name: row[1] for name, row in rows.items() if row[1]} == dict(withheld)
    samples = [(name, sample) for name, row in rows.items() for sample in row[2]]
    assert samples and not [s for _n, s in samples if s["record_id"] in private]
    private_names = {v for c in written if c.record_id in private for v in c.changed.get("Name", ())}
    assert not [s for name, s in samples if name == "Name" and {s["old"], s["new"]} & private_names]


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_a_validation_message_quoting_values_is_stored_masked(world: World, env: RegsyncEnv) -> None:
    refused = world.stack.validation_failures
    world.stack.salesforce.validation_failure(refused, MESSAGE)

    run = world.manual()

    with session_scope() as session:
        failures = session.scalars(select(RecordFailure).where(RecordFailure.run_id == run["id"])).all()
        stored = {f.record_id: (f.error_code, f.message) for f in failures if f.record_id in refused}
    masked = mask_values(MESSAGE)
    assert stored == {record_id: ("FIELD_CUSTOM_VALIDATION_EXCEPTION", masked) for record_id in refused}
    assert "is not allowed for org" in masked and masked.count("***") == 4
    everything = ledger_text(env.database_url)
    assert [v for v in (*QUOTED, *NUMBERS) if v in everything] == []
