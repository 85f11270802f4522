"""The CRM key index against the TLS sandbox org and real ledgers: a full plan fills it, a SystemModstamp delta
finds an edited org number with one query, feed keys are matched with one ledger query per batch, and the index
holds nothing but record Id → normalised key."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from config.settings import get_settings
from tests.conftest import RegsyncEnv
from tests.integration.backfill_world import NAME, World, open_world
from worker.backfill.options import BackfillOptions
from worker.changes import keyindex
from worker.changes.models import KeyIndexEntry, Watermark
from worker.company import CompanyKey
from worker.connections.apply import load_connection
from worker.connections.spec import ConnectionSpec
from worker.crm import soql as crm_soql
from worker.crm.port import CrmClient
from worker.errors import CrmTransientError
from worker.ledger.db import get_engine, session_scope
from worker.ledger.models import Run
from worker.sync.runtime import open_clients

SOURCE = "crm:Account"


@pytest.fixture
def world(env: RegsyncEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with open_world(tmp_path / "sandbox", monkeypatch, 120, validation_failures=0) as found:
        found.connect()
        yield found


def _connection_id() -> int:
    with session_scope() as session:
        return int(load_connection(session, NAME)[0].id)


@contextmanager
def _crm() -> Iterator[tuple[int, ConnectionSpec, CrmClient]]:
    connection_id = _connection_id()
    with open_clients(connection_id, get_settings()) as (runtime, crm, _registry):
        yield connection_id, runtime.spec, crm


def _delta() -> keyindex.KeyDelta:
    with _crm() as (connection_id, spec, crm):
        return keyindex.refresh_delta(session_scope, crm, connection_id, spec)


def _index() -> dict[str, tuple[str | None, str | None]]:
    with session_scope() as session:
        rows = session.execute(
            select(KeyIndexEntry.record_id, KeyIndexEntry.country, KeyIndexEntry.org_number)
        )
        return {record_id: (country, org) for record_id, country, org in rows}


def _expected(accounts: dict[str, dict[str, Any]]) -> dict[str, tuple[str | None, str | None]]:
    return {
        record_id: keyindex.index_key(account.get("Org_Number__c"), account.get("BillingCountryCode"))
        for record_id, account in accounts.items()
    }


def _watermark() -> Watermark:
    with session_scope() as session:
        row = session.scalars(select(Watermark).where(Watermark.source == SOURCE)).one()
        session.expunge(row)
        return row


def test_a_full_plan_fills_the_index_with_normalised_keys_only(world: World) -> None:
    accounts = world.stack.salesforce.snapshot()
    run = world.manual()

    index = _index()
    assert index == _expected(accounts)  # every record, the invalid ones with no key
    blanks = [record_id for record_id, key in index.items() if key == (None, None)]
    assert len(index) == 120 and 0 < len(blanks) < 120
    noisy = [
        a["Org_Number__c"] for a in accounts.values() if a.get("Org_Number__c") and " " in a["Org_Number__c"]
    ]
    assert noisy and not {org for _c, org in index.values()} & set(noisy)  # stored normalised, never raw
    assert {column.name for column in KeyIndexEntry.__table__.columns} == {
        "connection_id",
        "object",
        "record_id",
        "country",
        "org_number",
        "updated_at",
    }
    with session_scope() as session:
        started = session.scalars(select(Run.started_at).where(Run.id == run["id"])).one()
    # The plan read every record: a later SystemModstamp read need not reach further back than its start.
    assert started is not None and _watermark().position == started.astimezone(dt.UTC).isoformat()


def test_a_backfill_refreshes_what_it_read_but_leaves_the_watermark_alone(world: World) -> None:
    accounts = world.stack.salesforce.snapshot()
    chosen = sorted(accounts)[:7]
    world.backfill(BackfillOptions(ids=tuple(chosen)))
    assert _index() == {record_id: _expected(accounts)[record_id] for record_id in chosen}
    with session_scope() as session:
        assert session.scalars(select(Watermark)).all() == []  # it did not read every record


def test_an_org_number_edited_between_deltas_comes_back_in_the_next_delta_with_one_query(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    sf = world.stack.salesforce
    first = _delta()  # nothing read yet: every record, each valid key is new
    assert first.rows == 120 and first.calls == 1
    assert sorted(first.changed) == sorted(
        r for r, key in _expected(sf.snapshot()).items() if key[1] is not None
    )
    # The overlap only widens what is re-read; without it (and a second later, as the read rounds down to whole
    # seconds) the next read returns exactly the records edited since.
    monkeypatch.setattr(crm_soql, "MODSTAMP_OVERLAP", dt.timedelta(0))
    time.sleep(1.1)

    accounts = sf.snapshot()
    index = _index()
    valid = sorted(record_id for record_id, key in index.items() if key[1] is not None)
    blank = sorted(record_id for record_id, key in index.items() if key[1] is None)
    edited, added, other = valid[0], blank[0], valid[1]
    sf.edit(edited, Org_Number__c=accounts[other]["Org_Number__c"])  # now shares another record's key
    sf.edit(added, Org_Number__c="923609016", BillingCountryCode="NO")
    sf.edit(valid[2], Org_Number__c=" " + str(accounts[valid[2]]["Org_Number__c"]))  # same key, new noise

    before = len(sf.api_requests())
    second = _delta()
    sent = sf.api_requests()[before:]

    assert sorted(second.changed) == sorted([edited, added])
    assert second.rows == 3  # the three edited records, nothing else
    assert [r.method for r in sent] == ["GET"] and second.calls == 1
    soql = sent[0].query["q"][-1]
    assert "WHERE SystemModstamp > " in soql and soql.endswith("ORDER BY SystemModstamp, Id")
    assert _index() == _expected(sf.snapshot())
    newest = max(dt.datetime.fromisoformat(a["SystemModstamp"]) for a in sf.snapshot().values())
    assert _watermark().position == newest.astimezone(dt.UTC).isoformat()

    with session_scope() as session:
        duplicates = dict(keyindex.duplicate_keys(session, _connection_id(), "Account"))
    key = CompanyKey(*index[other])  # type: ignore[arg-type]
    assert duplicates[key] == sorted([edited, other])

    monkeypatch.setattr(crm_soql, "MODSTAMP_OVERLAP", dt.timedelta(minutes=2))
    # The real overlap re-reads the last two minutes: rows, but no key is reported twice.
    third = _delta()
    assert (third.rows, third.changed, third.calls) == (120, [], 1)


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_a_delta_page_hands_its_moved_keys_over_in_its_own_transaction(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keyindex, "DELTA_PAGE", 50)
    handed: list[str] = []
    pages = [0]

    def plan_sync(session: Session, moved: list[str]) -> None:
        in_this_transaction = session.scalars(select(KeyIndexEntry.record_id)).all()
        assert set(moved) <= set(in_this_transaction)
        pages[0] += 1
        if pages[0] == 3:
            raise CrmTransientError("the worker died while planning the third page")
        handed.extend(moved)

    with _crm() as (connection_id, spec, crm):
        with pytest.raises(CrmTransientError):
            keyindex.refresh_delta(session_scope, crm, connection_id, spec, on_changed=plan_sync)
        read = list(crm.modified_keys([spec.salesforce.org_number_field, "BillingCountryCode"], None))

    stored = _index()
    assert set(stored) == {str(r["Id"]) for r in read[:100]}  # two pages of 50; the third rolled back
    assert _watermark().details == {"rows": 50, "first": read[50]["Id"], "last": read[99]["Id"]}
    assert sorted(handed) == sorted(r for r, key in stored.items() if key[1] is not None)

    with _crm() as (connection_id, spec, crm):
        finished = keyindex.refresh_delta(session_scope, crm, connection_id, spec, on_changed=plan_sync)
    assert _index() == _expected(world.stack.salesforce.snapshot())
    # Nothing lost, nothing handed over twice: the rest arrives with the next read.
    everything = sorted(r for r, key in _index().items() if key[1] is not None)
    assert sorted(handed) == everything
    assert set(finished.changed) == set(everything) - set(stored)


def test_feed_keys_are_matched_with_one_ledger_query_per_batch(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.manual()
    index = _index()
    wanted: dict[CompanyKey, list[str]] = {}
    for record_id, (country, org) in sorted(index.items()):
        if country is not None and org is not None:
            wanted.setdefault(CompanyKey(country, org), []).append(record_id)
    unknown = [CompanyKey("NO", "923609016"), CompanyKey("SE", "5560360793")]
    keys = [*wanted, *unknown, *wanted]  # repeats cost nothing

    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = get_engine()
    connection_id = _connection_id()
    event.listen(engine, "before_cursor_execute", count)
    try:
        with session_scope() as session:
            found = keyindex.records_for(session, connection_id, "Account", keys)
        one = len(statements)
        monkeypatch.setattr(keyindex, "KEY_BATCH", 10)
        with session_scope() as session:
            batched = keyindex.records_for(session, connection_id, "Account", keys)
    finally:
        event.remove(engine, "before_cursor_execute", count)

    assert found == batched == wanted and len(wanted) > 50
    selects = [s for s in statements if "key_index" in s]
    assert one - len([s for s in statements[:one] if "key_index" not in s]) == 1
    assert len(selects) == 1 + -(-(len(wanted) + len(unknown)) // 10)
