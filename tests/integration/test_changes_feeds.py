"""Issue 14, acceptance 2 (both feeds), in process: the production changes planner and chunk code with the real
Salesforce and registry clients over TLS against the sandbox, and PostgreSQL.

- brreg: a mapped change is applied, an unmapped one and a NEW unit the CRM does not hold are not (not even
  looked up);
- Proff: the overlap day is re-read by the next run and nothing is applied twice (``feed_seen``);
- Proff 31 days behind: the run fails FEED_GAP, one ``feed_gap`` alert (also after a second run), the watermark
  stays, nothing is written.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import RegsyncEnv
from tests.integration.changes_world import changes_world, renamed
from tests.integration.inprocess_runs import registry_numbers
from worker.alerts.models import Alert, AlertKind
from worker.changes.models import ChangeOutcome, ChangeType, FeedSeen, Watermark
from worker.company import Company, CompanyStatus
from worker.ledger.db import session_scope
from worker.ledger.models import Run
from worker.sandbox.tls import RecordedRequest

pytestmark = pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)

NEW_UNIT = "923609016"  # valid checksum; no sandbox company, no record holds it


def _lookups(requests: list[RecordedRequest], feed_path: str) -> list[str]:
    return registry_numbers([r for r in requests if feed_path not in r.path])


@pytest.mark.timeout(60)
def test_brreg_run_applies_mapped_changes_and_ignores_unmapped_and_new_units(
    env: RegsyncEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with changes_world(tmp_path, monkeypatch, "brreg") as world:
        world.full_run()
        mapped, unmapped = world.singles(2)
        assert NEW_UNIT not in {org for _c, org in world.held()}
        first = world.registry.script_change(renamed(mapped)).brreg_id
        other = dt.date(1990, 1, 1) if unmapped.founded != dt.date(1990, 1, 1) else dt.date(1991, 1, 1)
        world.registry.script_change(unmapped.model_copy(update={"founded": other}))
        new = Company(org_number=NEW_UNIT, country="NO", status=CompanyStatus.ACTIVE, name="Ny AS")
        last = world.registry.script_new(new).brreg_id
        written_before, asked_before = len(world.sf.changes), len(world.registry.requests)

        run = world.changes_run()
        written = world.sf.changes[written_before:]
        asked = _lookups(world.registry.requests[asked_before:], "/oppdateringer/")
        events = world.events(run["id"])
        target = world.record_of(mapped)

    assert run["status"] == "succeeded", run
    assert [(c.record_id, set(c.changed)) for c in written] == [(target, {"Name"})]
    assert world.sf.snapshot()[target]["Name"] == renamed(mapped).name
    assert asked == [mapped.org_number]  # neither the unmapped change nor the new unit was looked up
    assert {(e.org_number, e.outcome, e.field) for e in events} == {
        (mapped.org_number, ChangeOutcome.SYNCED.value, "name"),
        (unmapped.org_number, ChangeOutcome.UNMAPPED.value, None),
    }
    assert {e.item_id for e in events if e.org_number == mapped.org_number} == {str(first)}
    assert all(e.source == "feed:brreg:NO" and e.old_value is None and e.new_value is None for e in events)
    assert (run["changes_seen"], run["changes_matched"], run["changes_unmapped"]) == (3, 2, 1)
    assert run["planned"] == 1
    assert world.watermark("feed:brreg:NO") == str(last)


@pytest.mark.timeout(60)
def test_proff_overlap_day_is_reread_and_nothing_is_applied_twice(
    env: RegsyncEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with changes_world(tmp_path, monkeypatch, "proff") as world:
        world.full_run()
        a, b = world.singles(2)
        first_item = world.registry.script_change(renamed(a)).proff_patch_id
        written_before = len(world.sf.changes)
        first = world.changes_run()
        after_first = len(world.sf.changes)
        today = dt.datetime.now(dt.UTC).date().isoformat()
        assert world.watermark("feed:proff:NO") == today

        second_item = world.registry.script_change(renamed(b)).proff_patch_id
        feed_before = len(world.registry.requests)
        second = world.changes_run()
        feed_asks = [r for r in world.registry.requests[feed_before:] if "/api/changes/" in r.path]
        writes = world.sf.changes
        events = world.events()
        with session_scope() as session:
            seen = set(session.scalars(select(FeedSeen.item_id)))
        record_a, record_b = world.record_of(a), world.record_of(b)

    assert first["status"] == second["status"] == "succeeded", (first, second)
    assert [c.record_id for c in writes[written_before:after_first]] == [record_a]
    assert [c.record_id for c in writes[after_first:]] == [record_b]  # a's change was read again, not applied
    assert feed_asks and feed_asks[0].query["since"] == [today]  # the overlap day, re-read
    assert (first["changes_seen"], second["changes_seen"]) == (1, 1)
    assert (first["planned"], second["planned"]) == (1, 1)
    by_item = {(e.item_id, e.run_id, e.outcome) for e in events if e.source == "feed:proff:NO"}
    assert by_item == {
        (first_item, first["id"], ChangeOutcome.SYNCED.value),
        (second_item, second["id"], ChangeOutcome.SYNCED.value),
    }
    assert {first_item, second_item} <= seen
    assert {e.change_type for e in events if e.source == "feed:proff:NO"} == {ChangeType.CHANGED.value}


@pytest.mark.timeout(60)
def test_a_proff_watermark_31_days_old_fails_feed_gap_with_one_alert(
    env: RegsyncEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with changes_world(tmp_path, monkeypatch, "proff") as world:
        world.full_run()
        (company,) = world.singles(1)
        world.registry.script_change(renamed(company))
        old = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=31)).isoformat()
        with session_scope() as session:
            session.add(
                Watermark(
                    connection_id=world.connection_id(), source="feed:proff:NO", position=old, details={}
                )
            )
        written_before, asked_before = len(world.sf.changes), len(world.registry.requests)

        runs = [world.changes_run(), world.changes_run()]
        with session_scope() as session:
            alerts = session.execute(
                select(Alert.status, Alert.details).where(Alert.kind == AlertKind.FEED_GAP.value)
            ).all()
            errors = session.execute(
                select(Run.error_code, Run.error).where(Run.id.in_([r["id"] for r in runs]))
            ).all()
        written = world.sf.changes[written_before:]
        asked = world.registry.requests[asked_before:]
        position = world.watermark("feed:proff:NO")
        events = world.events()

    assert [r["status"] for r in runs] == ["failed", "failed"], runs
    assert len(errors) == 2
    assert all(code == "FEED_GAP" and "full reconcile" in (message or "") for code, message in errors)
    assert len(alerts) == 1 and alerts[0].details["run_id"] == runs[0]["id"], alerts
    assert position == old  # never a silent skip: the watermark stays
    assert written == []
    assert not [r for r in asked if "/api/changes/" in r.path]  # refused before any feed request
    assert not [e for e in events if e.run_id in {r["id"] for r in runs}]
