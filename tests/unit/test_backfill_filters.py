"""Backfill filters → SOQL (typed, escaped literals), Salesforce Ids, selections, options and the estimate."""

from __future__ import annotations

import pytest

from tests.unit.fakes import counts, make_spec
from worker.backfill.estimate import estimate, run_bounds
from worker.backfill.filters import Condition, make_condition, soql, where_clause
from worker.backfill.options import BackfillOptions, Selection, check_fields, country_condition
from worker.cli.backfill import parse_where_args
from worker.crm.ids import canonical_id, id_batches, parse_ids
from worker.crm.port import FieldInfo
from worker.errors import InvalidFilter, LedgerError
from worker.sandbox.dataset import salesforce_id
from worker.sandbox.salesforce import _SCHEMA
from worker.sandbox.soql import parse
from worker.sync.policies import RecordPlan
from worker.sync.preview import tally

FIELDS = {
    name: FieldInfo(name, kind, True)
    for name, kind in [
        ("Id", "id"),
        ("Name", "string"),
        ("BillingCountryCode", "picklist"),
        ("NumberOfEmployees", "int"),
        ("AnnualRevenue", "currency"),
        ("Registry_Sync_Opt_Out__c", "boolean"),
        ("Founded_Date__c", "date"),
        ("LastModifiedDate", "datetime"),
        ("BillingAddress", "address"),
    ]
}
INJECTION = "x' OR Name != '"


def where(*triples: tuple[str, str, str]) -> str | None:
    return where_clause([make_condition(f, op, v, FIELDS) for f, op, v in triples])


def test_text_values_are_quoted_and_escaped_so_an_injection_stays_one_literal() -> None:
    clause = where(("Name", "=", INJECTION))

    assert clause == "Name = 'x\\' OR Name != \\''"
    # The sandbox's SOQL parser (real SOQL grammar) reads one comparison with the whole value as its literal.
    query = parse(f"SELECT Id FROM Account WHERE {clause}", _SCHEMA)
    assert query.where is not None
    assert query.where.literal == INJECTION  # type: ignore[attr-defined]
    assert query.matches({"Name": "Acme AS"}) is False


@pytest.mark.parametrize("value", ["back\\slash", 'dou"ble', "new\nline", "tab\there", "100%"])
def test_any_text_round_trips_through_the_soql_grammar(value: str) -> None:
    clause = where(("Name", "=", value))
    query = parse(f"SELECT Id FROM Account WHERE {clause}", _SCHEMA)

    assert query.where.literal == value  # type: ignore[union-attr]


def test_field_names_are_resolved_case_insensitively_to_the_describe_name() -> None:
    assert where(("numberofemployees", ">=", "10"), ("name", "like", "Acme%")) == (
        "(NumberOfEmployees >= 10) AND (Name LIKE 'Acme%')"
    )


@pytest.mark.parametrize(
    ("field", "op", "value", "message"),
    [
        ("Nope__c", "=", "x", "has no field"),
        ("Name OR Id", "=", "x", "not a Salesforce field API name"),
        ("Owner.Name", "=", "x", "not a Salesforce field API name"),
        ("Name", "==", "x", "operator"),
        ("Name", "IN", "x", "operator"),
        ("NumberOfEmployees", ">", "10 OR Name != ''", "number"),
        ("NumberOfEmployees", "LIKE", "1%", "LIKE only works on text"),
        ("Registry_Sync_Opt_Out__c", "=", "yes", "checkbox"),
        ("Registry_Sync_Opt_Out__c", "<", "true", "checkbox"),
        ("Founded_Date__c", ">", "2020-01-01' OR 'a'='a", "YYYY-MM-DD"),
        ("LastModifiedDate", ">", "2024-01-01", "datetime"),
        ("Name", "<", "null", "null"),
        ("BillingAddress", "=", "x", "cannot be filtered"),
    ],
)
def test_bad_filters_are_refused_with_a_message(field: str, op: str, value: str, message: str) -> None:
    with pytest.raises(InvalidFilter, match=message):
        make_condition(field, op, value, FIELDS)


def test_typed_literals_for_numbers_dates_booleans_and_null() -> None:
    assert where(("AnnualRevenue", "<", "-1.5")) == "AnnualRevenue < -1.5"
    assert where(("Founded_Date__c", ">=", "2020-01-31")) == "Founded_Date__c >= 2020-01-31"
    assert (
        where(("LastModifiedDate", ">", "2024-01-01T00:00:00Z")) == "LastModifiedDate > 2024-01-01T00:00:00Z"
    )
    assert where(("Registry_Sync_Opt_Out__c", "!=", "TRUE")) == "Registry_Sync_Opt_Out__c != true"
    assert where(("Name", "=", "NULL")) == "Name = null"
    assert where() is None


def test_stored_conditions_are_checked_again_when_they_become_soql() -> None:
    with pytest.raises(InvalidFilter):
        soql(Condition("Name) OR (Id", "=", "x"))
    with pytest.raises(InvalidFilter):
        soql(Condition("Name", "= 'a' OR Name =", "x"))
    with pytest.raises(InvalidFilter):
        soql(Condition("NumberOfEmployees", "=", "1 OR Id != null", "int"))


def test_where_arguments_come_in_triples() -> None:
    assert parse_where_args(["--where", "Name", "!=", INJECTION, "--where", "A", "<", "-5"]) == [
        ("Name", "!=", INJECTION),
        ("A", "<", "-5"),
    ]
    with pytest.raises(InvalidFilter, match="three values"):
        parse_where_args(["--where", "Name", "="])
    with pytest.raises(InvalidFilter, match="unexpected argument"):
        parse_where_args(["--wher", "Name", "=", "x"])


def test_salesforce_ids_become_18_characters_and_survive_a_case_change() -> None:
    full = salesforce_id("001", 1_234_567)
    assert full[:15] not in (full[:15].lower(), full[:15].upper())  # mixed case, so the suffix matters

    assert canonical_id(full[:15]) == full
    assert canonical_id(full.lower()) == full
    assert canonical_id(f"  {full}  ") == full
    with pytest.raises(InvalidFilter, match="checksum"):
        canonical_id(full[:15] + ("AAA" if full[15:] != "AAA" else "BBB"))
    for bad in ("001'); DELETE", "001", full + "X", "001AAAAAAAAAAAA-"):
        with pytest.raises(InvalidFilter):
            canonical_id(bad)


def test_ids_files_skip_comments_and_duplicates_and_name_the_bad_line() -> None:
    a, b = salesforce_id("001", 1), salesforce_id("001", 2)

    assert parse_ids([f"{a}  # first", "", "# comment", b, a[:15]]) == [a, b]
    with pytest.raises(InvalidFilter, match="line 2"):
        parse_ids([a, "not-an-id"])
    with pytest.raises(InvalidFilter, match="no record Id"):
        parse_ids(["# nothing"])


def test_id_selection_queries_in_batches_and_resumes_without_querying_planned_batches() -> None:
    ids = [salesforce_id("001", n) for n in range(450)]
    selection = Selection(where="Name = 'x'", ids=tuple(reversed(ids)))
    batches = list(id_batches(ids))

    queries = list(selection.queries(None))
    assert [len(b) for b in batches] == [200, 200, 50]
    assert len(queries) == 3
    assert all(q is not None and q.startswith("(Name = 'x') AND (Id IN ('") for q in queries)

    resumed = list(selection.queries(batches[1][10]))
    assert len(resumed) == 2  # the first batch is skipped without a query
    assert resumed[0] is not None and resumed[0].endswith(f"(Id > '{batches[1][10]}')")


def test_a_selection_of_everything_keeps_the_plain_cursor_condition() -> None:
    assert list(Selection().queries(None)) == [None]
    assert list(Selection().queries("001000000000001AAA")) == ["Id > '001000000000001AAA'"]


def test_options_limit_the_mapping_and_survive_the_run_json() -> None:
    spec = make_spec()
    options = BackfillOptions(dry_run=True, fields=check_fields(spec, ["status", " name"]))

    again = BackfillOptions.from_run(options.to_run())
    assert again == options
    assert list(again.effective_spec(spec).mapping) == ["status", "name"]
    assert BackfillOptions.from_run({}).effective_spec(spec) is spec
    with pytest.raises(InvalidFilter, match="maps name, status, employees"):
        check_fields(spec, ["website"])
    with pytest.raises(LedgerError):
        BackfillOptions.from_run({"only_failed_run": "many"})


def test_country_filter_uses_the_country_field_or_is_checked_against_a_fixed_country() -> None:
    fixed = make_spec()  # country = "NO"
    field_spec = fixed.model_copy(
        update={"salesforce": fixed.salesforce.model_copy(update={"country": None, "country_field": "Cc__c"})}
    )

    assert country_condition(fixed, "no") is None
    with pytest.raises(InvalidFilter, match="only holds NO"):
        country_condition(fixed, "SE")
    with pytest.raises(InvalidFilter, match="must be one of"):
        country_condition(fixed, "XX")
    assert BackfillOptions(country="SE").filter_where(field_spec) == "Cc__c = 'SE'"


class CountingCrm:
    def __init__(self, total: int) -> None:
        self.total = total
        self.calls = 0
        self.wheres: list[str | None] = []

    def count(self, where: str | None = None) -> int:
        self.calls += 1
        self.wheres.append(where)
        return self.total


def test_estimate_counts_once_and_bounds_every_call() -> None:
    crm = CountingCrm(4_500)

    result = estimate(crm, Selection(where="Name = 'x'"), chunk_size=200, dry_run=False)

    assert crm.wheres == ["Name = 'x'"]
    assert counts(result, "records", "count_calls", "query_calls") == {
        "records": 4_500,
        "count_calls": 1,
        "query_calls": 3,
    }
    assert counts(result, "read_calls", "write_calls_max", "registry_calls_max") == {
        "read_calls": 23,
        "write_calls_max": 23,
        "registry_calls_max": 4_500,
    }
    assert counts(result, "check_calls", "describe_calls_max") == {"check_calls": 5, "describe_calls_max": 23}
    assert result.crm_calls_max == 5 + 3 + 23 + 23 + 23
    dry = estimate(CountingCrm(0), Selection(), chunk_size=200, dry_run=True)
    assert counts(dry, "query_calls", "read_calls", "write_calls_max") == {
        "query_calls": 1,
        "read_calls": 0,
        "write_calls_max": 0,
    }


@pytest.mark.parametrize(("records", "chunk", "batch"), [(0, 200, 1), (4_500, 200, 1), (4_999, 150, 100)])
def test_estimate_agrees_with_the_budget_guard_arithmetic(records: int, chunk: int, batch: int) -> None:
    result = estimate(
        CountingCrm(records), Selection(), chunk_size=chunk, dry_run=False, registry_batch=batch
    )

    shared = run_bounds(records, records, 1.0, chunk, registry_batch=batch)
    assert counts(result, "crm_calls_max", "registry_calls_max") == {
        "crm_calls_max": shared.crm_calls,
        "registry_calls_max": shared.registry_calls,
    }
    assert batch == 1 or result.registry_calls_max < records  # brreg's batch lookup needs fewer calls


def test_estimate_of_an_ids_list_costs_nothing_without_filters() -> None:
    ids = tuple(salesforce_id("001", n) for n in range(250))
    crm = CountingCrm(7)

    plain = estimate(crm, Selection(ids=ids), chunk_size=100, dry_run=False)
    filtered = estimate(crm, Selection(where="Name = 'x'", ids=ids), chunk_size=100, dry_run=False)

    assert counts(plain, "records", "records_is_upper_bound", "count_calls", "query_calls") == {
        "records": 250,
        "records_is_upper_bound": True,
        "count_calls": 0,
        "query_calls": 2,
    }
    assert counts(filtered, "records", "count_calls") == {
        "records": 14,
        "count_calls": 2,  # one COUNT() per batch of 200 Ids
    }


def test_dry_run_tally_counts_per_field_and_keeps_three_samples() -> None:
    records = {f"r{i}": {"Name": f"old {i}", "Website": None} for i in range(5)}
    plans = {f"r{i}": RecordPlan(changes={"Name": f"new {i}"}) for i in range(5)}
    plans["r4"].changes["Website"] = "www.x.no"

    out = tally(records, plans)

    assert (out["Name"].count, out["Website"].count) == (5, 1)
    assert out["Name"].samples == [
        {"record_id": f"r{i}", "old": f"old {i}", "new": f"new {i}"} for i in range(3)
    ]


def test_estimate_adds_name_searches_to_registry_calls_and_counts_their_reading() -> None:
    crm = CountingCrm(1_000)

    def searches() -> int:
        crm.calls += 1  # reading the selection to find them: one query page
        return 37

    result = estimate(crm, Selection(), chunk_size=200, dry_run=False, name_searches=searches)
    dry = estimate(crm, Selection(), chunk_size=200, dry_run=True, name_searches=searches)

    assert counts(result, "name_searches", "registry_calls_max", "count_calls") == {
        "name_searches": 37,
        "registry_calls_max": 1_000 + 37,
        "count_calls": 2,
    }
    assert counts(dry, "name_searches", "registry_calls_max") == {
        "name_searches": 37,
        "registry_calls_max": 1_000,
    }
    assert estimate(crm, Selection(), chunk_size=200, dry_run=False).name_searches == 0
