"""SystemModstamp: the sandbox org sets it at creation and moves it on every write, its SOQL compares datetime
literals as instants, and the pure pieces of the key index (the delta's condition, key normalisation)."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from worker.changes.keyindex import index_key
from worker.crm.soql import MODSTAMP_OVERLAP, build_soql, modified_since
from worker.sandbox.salesforce_schema import describe_body
from worker.sandbox.salesforce_store import AccountStore
from worker.sandbox.soql import parse

SCHEMA = {"Account": ["Id", "Name", "Org_Number__c", "SystemModstamp", "LastModifiedDate"]}
DELTA = "SELECT Id, Org_Number__c, SystemModstamp FROM Account WHERE {where} ORDER BY SystemModstamp, Id"


def _store() -> AccountStore:
    return AccountStore(
        [
            {
                "Id": "001B",
                "Name": "b",
                "SystemModstamp": "2026-12-01T00:00:00.000+0000",
            },  # exactly the literal
            {"Id": "001A", "Name": "a", "SystemModstamp": "2026-12-01T00:00:00.001+0000"},
            {
                "Id": "001C",
                "Name": "c",
                "SystemModstamp": "2026-12-01T00:00:00.001+0000",
            },  # a tie: Id decides
            {"Id": "001D", "Name": "d", "SystemModstamp": "2026-11-30T23:59:59.999+0000"},
        ]
    )


def _ids(store: AccountStore, where: str) -> list[str]:
    body = store.query(parse(DELTA.format(where=where), SCHEMA), "62.0")
    return [record["Id"] for record in body["records"]]


def test_datetime_literals_compare_as_instants_strictly_after_and_in_stamp_then_id_order() -> None:
    store = _store()
    assert _ids(store, "SystemModstamp > 2026-12-01T00:00:00Z") == ["001A", "001C"]
    assert _ids(store, "SystemModstamp >= 2026-12-01T00:00:00Z") == ["001B", "001A", "001C"]
    # The same instant written with an offset: 01:00 in +01:00 is midnight UTC.
    assert _ids(store, "SystemModstamp > 2026-12-01T01:00:00+01:00") == ["001A", "001C"]
    assert _ids(store, "SystemModstamp > 2026-11-30T00:00:00Z") == ["001D", "001B", "001A", "001C"]
    assert _ids(store, "SystemModstamp = 2026-12-01T00:00:00.001Z") == ["001A", "001C"]


def test_every_write_moves_system_modstamp_and_creation_sets_it() -> None:
    store = _store()
    new_id = store.add({"Name": "new"})
    before = store.snapshot()
    assert before[new_id]["SystemModstamp"] > before["001A"]["SystemModstamp"]
    time.sleep(0.002)
    store.edit("001A", Name="edited by a person")
    results = store.update(
        [{"attributes": {"type": "Account"}, "id": "001B", "Name": "written by the API"}], False
    )
    assert results == [{"id": "001B", "success": True, "errors": []}]
    after = store.snapshot()
    assert after["001A"]["SystemModstamp"] > before[new_id]["SystemModstamp"]
    assert after["001B"]["SystemModstamp"] > before[new_id]["SystemModstamp"]
    assert after["001C"]["SystemModstamp"] == before["001C"]["SystemModstamp"]  # untouched
    assert dt.datetime.fromisoformat(after["001A"]["SystemModstamp"]).tzinfo == dt.UTC


def test_system_modstamp_is_described_read_only_and_refused_in_a_write() -> None:
    described = {field["name"]: field for field in describe_body("62.0")["fields"]}
    assert (described["SystemModstamp"]["type"], described["SystemModstamp"]["updateable"]) == (
        "datetime",
        False,
    )
    store = _store()
    item = {"attributes": {"type": "Account"}, "id": "001A", "SystemModstamp": "2030-01-01T00:00:00.000+0000"}
    [result] = store.update([item], False)
    assert result["success"] is False
    assert result["errors"][0]["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert store.snapshot()["001A"]["SystemModstamp"] == "2026-12-01T00:00:00.001+0000"


def test_the_delta_condition_reaches_back_by_the_overlap_in_whole_utc_seconds() -> None:
    since = dt.datetime(2026, 12, 1, 1, 2, 3, 999_000, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert dt.timedelta(minutes=2) == MODSTAMP_OVERLAP
    assert modified_since(since) == "SystemModstamp > 2026-12-01T00:00:03Z"
    assert modified_since(None) is None
    with pytest.raises(ValueError, match="time zone"):
        modified_since(dt.datetime(2026, 12, 1))
    soql = build_soql("Account", ["Id", "SystemModstamp"], modified_since(since), "SystemModstamp, Id")
    assert soql.endswith("WHERE SystemModstamp > 2026-12-01T00:00:03Z ORDER BY SystemModstamp, Id")
    assert _ids(_store(), soql.split(" WHERE ")[1].split(" ORDER BY ")[0]) == []
    with pytest.raises(ValueError, match="not Salesforce field API names"):
        build_soql("Account", ["Id"], None, "SystemModstamp; DELETE")


@pytest.mark.parametrize(
    ("raw", "country", "key"),
    [
        ("923 609 016", "no", ("NO", "923609016")),
        ("NO923609016", "NO", ("NO", "923609016")),
        ("923609017", "NO", (None, None)),  # checksum
        ("", "NO", (None, None)),
        (None, "NO", (None, None)),
        ("923609016", None, (None, None)),
        ("556036-0793", " se ", ("SE", "5560360793")),
    ],
)
def test_index_key_is_the_lookup_normalisation_or_nothing(
    raw: str | None, country: str | None, key: tuple[str | None, str | None]
) -> None:
    assert index_key(raw, country) == key
