"""The review policy against the TLS sandbox org and a real ledger: a review field's change waits, approve writes
it, reject leaves the CRM alone, a moved CRM value sends it back, each decision is audited, no value is logged."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import RegsyncEnv
from tests.integration.backfill_world import NAME, World, open_world
from worker.changes import events, review
from worker.changes.events import Origin, ReviewItem
from worker.changes.models import ChangeEvent, ChangeOutcome, ChangeType
from worker.company import CompanyKey
from worker.connections.apply import load_connection
from worker.crm.values import value_hash
from worker.errors import ChangeNotFound, StateConflict
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent, RecordWrite
from worker.sandbox.stack import DEMO_MAPPING

MAPPING = {**DEMO_MAPPING, "name": {"field": "Name", "policy": "review"}}


@pytest.fixture
def world(env: RegsyncEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with open_world(tmp_path / "sandbox", monkeypatch, 120, validation_failures=0) as found:
        found.connect(mapping=MAPPING)
        yield found


def _events(status: ChangeOutcome | None = None) -> list[ChangeEvent]:
    with session_scope() as session:
        connection, _spec = load_connection(session, NAME)
        rows, _more = review.list_events(session, connection.id, status=status, limit=10_000)
        session.expunge_all()
        return rows


def _approve(ids: list[int], actor: str = "alice") -> list[review.Decision]:
    with session_scope() as session:
        connection_id = load_connection(session, NAME)[0].id
    with review.connection_crm(connection_id) as (spec, crm):
        return review.approve(spec, connection_id, ids, actor, crm)


def _reject(ids: list[int], actor: str = "bob") -> list[review.Decision]:
    with session_scope() as session:
        connection_id = load_connection(session, NAME)[0].id
        return review.reject(session, (connection_id, NAME), ids, actor)


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_review_changes_wait_and_each_decision_does_what_it_says(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sf = world.stack.salesforce
    first = world.manual()

    waiting = _events(ChangeOutcome.REVIEW)
    assert len(waiting) == first["review"] > 3  # the seeded data has stale names
    assert all("Name" not in change.changed for change in sf.changes)  # no name was written
    for event in waiting:
        assert (event.field, event.source, event.item_id) == ("name", "run:full", str(first["id"]))
        assert event.old_value == sf.snapshot()[str(event.record_id)]["Name"] != event.new_value

    second = world.manual()  # a re-run sees the same changes: counted again, recorded once
    assert second["review"] == first["review"]
    assert len(_events()) == len(waiting)

    approved, rejected, moved = waiting[0], waiting[1], waiting[2]
    sf.edit(str(moved.record_id), Name="Edited By Hand AS")
    decisions = {d.event_id: d for d in _approve([approved.id, moved.id])}
    rejects = _reject([rejected.id])

    accounts = sf.snapshot()
    assert accounts[str(approved.record_id)]["Name"] == approved.new_value
    assert accounts[str(rejected.record_id)]["Name"] == rejected.old_value
    assert accounts[str(moved.record_id)]["Name"] == "Edited By Hand AS"
    assert decisions[approved.id].outcome is ChangeOutcome.APPROVED
    assert decisions[moved.id].outcome is ChangeOutcome.REVIEW and decisions[moved.id].reason == review.MOVED
    assert [d.outcome for d in rejects] == [ChangeOutcome.REJECTED]

    now = {event.id: event for event in _events()}
    assert (now[approved.id].outcome, now[approved.id].decided_by) == ("approved", "alice")
    assert (now[rejected.id].outcome, now[rejected.id].decided_by) == ("rejected", "bob")
    for decided in (now[approved.id], now[rejected.id]):
        assert decided.old_value is None and decided.new_value is None  # values kept only while in review
    back = now[moved.id]
    assert (back.outcome, back.old_value, back.new_value) == ("review", "Edited By Hand AS", moved.new_value)
    assert back.decided_by is None  # free for the next decision

    with session_scope() as session:
        hashes = session.scalars(
            select(RecordWrite.value_hash).where(
                RecordWrite.record_id == approved.record_id, RecordWrite.field == "Name"
            )
        ).all()
        audit = session.scalars(select(AuditEvent).where(AuditEvent.action.like("change.%"))).all()
        trail = [(a.actor, a.action, a.after) for a in audit]
    assert hashes == [
        value_hash(approved.new_value)
    ]  # the approved name is regsync's: protect_manual knows it
    assert trail == [
        ("alice", "change.approve", {"events": {str(approved.id): "approved", str(moved.id): "review"}}),
        ("bob", "change.reject", {"events": {str(rejected.id): "rejected"}}),
    ]

    values = {str(v) for e in waiting for v in (e.old_value, e.new_value) if v} | {"Edited By Hand AS"}
    logged = "\n".join(
        record.getMessage() + json.dumps(record.__dict__, default=str) for record in caplog.records
    )
    assert caplog.records and not [v for v in values if v in logged]
    assert not [v for v in values if v in json.dumps(trail)]

    # The moved change, approved again now that the admin saw the new old value, is written.
    assert _approve([moved.id])[0].outcome is ChangeOutcome.APPROVED
    assert sf.snapshot()[str(moved.record_id)]["Name"] == moved.new_value


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_decisions_are_idempotent_and_never_cross_each_other(world: World) -> None:
    world.manual()
    first, second = _events(ChangeOutcome.REVIEW)[:2]
    writes_before = len(world.stack.salesforce.changes)

    assert _reject([first.id])[0].outcome is ChangeOutcome.REJECTED
    assert _reject([first.id])[0].reason == "already decided"  # a repeated request changes nothing
    with pytest.raises(StateConflict, match=f"change event {first.id} was already decided"):
        _approve([first.id])  # a rejected change is never written afterwards
    assert len(world.stack.salesforce.changes) == writes_before
    with pytest.raises(ChangeNotFound, match="no change event 999999"):
        _reject([second.id, 999_999])
    kept = {event.id: event for event in _events()}[second.id]
    assert (kept.outcome, kept.decided_by, kept.new_value) == ("review", None, second.new_value)  # untouched


@pytest.mark.parametrize("ledger_url", ["sqlite", "postgresql"], indirect=True)
def test_a_waiting_change_is_recorded_once_and_a_different_new_value_replaces_it(env: RegsyncEnv) -> None:
    from worker.connections.apply import apply_connection
    from worker.connections.spec import parse_spec

    spec = parse_spec(_offline_spec())
    with session_scope() as session:
        connection_id = apply_connection(session, spec, "test").connection_id
    key = CompanyKey("NO", "923609016")

    def item(item_id: str, new: str) -> ReviewItem:
        origin = Origin("run:full", item_id, ChangeType.CHANGED, None)
        return ReviewItem(origin, "001000000000001AAA", key, "name", "Old AS", new)

    with session_scope() as session:
        assert events.record_review(session, connection_id, [item("1", "New AS")]) == 1
    with session_scope() as session:
        assert events.record_review(session, connection_id, [item("2", " New AS ")]) == 0  # same value: once
    with session_scope() as session:
        assert events.record_review(session, connection_id, [item("3", "Newer AS")]) == 1
    with session_scope() as session:
        rows = session.scalars(select(ChangeEvent).order_by(ChangeEvent.id)).all()
        got = [(r.outcome, r.new_value, r.reason) for r in rows]
    assert got == [
        ("skipped", None, events.REPLACED.format(event_id=rows[1].id)),
        ("review", "Newer AS", None),
    ]


def _offline_spec() -> dict[str, Any]:
    return {
        "name": NAME,
        "salesforce": {
            "token_url": "https://login.example.invalid/services/oauth2/token",
            "client_id": "x",
            "org_number_field": "Org_Number__c",
            "country": "NO",
        },
        "registry": {"provider": "brreg", "base_url": "https://data.brreg.no/enhetsregisteret/api"},
        "mapping": MAPPING,
    }


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_the_cli_lists_the_queue_and_decides_with_an_actor(world: World) -> None:
    from typer.testing import CliRunner

    from worker.cli.main import app

    world.manual()
    runner = CliRunner()
    listed = runner.invoke(app, ["changes", "list", NAME, "--status", "review", "--json"])
    items = json.loads(listed.stdout)["items"]
    assert listed.exit_code == 0 and items and items[0]["new_value"]  # values are shown to the admin
    target = str(items[0]["id"])
    assert runner.invoke(app, ["changes", "reject", target]).exit_code == 2  # no actor: refused
    decided = runner.invoke(app, ["changes", "reject", target, "--actor", "carol", "--json"])
    assert decided.exit_code == 0 and json.loads(decided.stdout)[0]["outcome"] == "rejected"
    assert runner.invoke(app, ["changes", "approve", "999999", "--actor", "carol"]).exit_code == 2
    conflict = runner.invoke(app, ["changes", "approve", target, "--actor", "carol"])
    assert conflict.exit_code == 1 and "already decided" in conflict.output
