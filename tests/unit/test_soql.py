"""The sandbox's SOQL parser: the subset regsync sends, escapes, and the errors Salesforce would give."""

from __future__ import annotations

from typing import Any

import pytest

from worker.crm.soql import build_soql, soql_quote
from worker.sandbox.soql import Query, SoqlError, parse, tokenize

SCHEMA = {
    "Account": ["Id", "Name", "NumberOfEmployees", "Website", "Registry_Sync_Opt_Out__c", "Founded_Date__c"]
}

RECORDS: list[dict[str, Any]] = [
    {
        "Id": "001A",
        "Name": "Acme AS",
        "NumberOfEmployees": 10,
        "Website": None,
        "Registry_Sync_Opt_Out__c": False,
    },
    {"Id": "001B", "Name": "acme as", "NumberOfEmployees": 250, "Website": "https://b.no"},
    {"Id": "001C", "Name": "Bolt_100%", "NumberOfEmployees": None, "Registry_Sync_Opt_Out__c": True},
    {"Id": "001D", "Name": "x' OR Name != '", "NumberOfEmployees": 3, "Founded_Date__c": "2001-05-17"},
    {"Id": "001E", "Name": "Back\\slash", "NumberOfEmployees": 7},
]


def ids(soql: str) -> list[str]:
    return [record["Id"] for record in parse(soql, SCHEMA).run(RECORDS)]


def test_select_from_resolves_names_case_insensitively_to_api_names() -> None:
    query = parse("select id, NAME from ACCOUNT", SCHEMA)
    assert query == Query(fields=("Id", "Name"), sobject="Account")


def test_no_where_matches_everything_in_order() -> None:
    assert ids("SELECT Id FROM Account") == ["001A", "001B", "001C", "001D", "001E"]


def test_string_equality_ignores_case_like_salesforce() -> None:
    assert ids("SELECT Id FROM Account WHERE Name = 'ACME AS'") == ["001A", "001B"]


def test_escaped_injection_attempt_matches_only_itself() -> None:
    literal = soql_quote("x' OR Name != '")
    assert literal == r"'x\' OR Name != \''"
    assert ids(f"SELECT Id FROM Account WHERE Name = {literal}") == ["001D"]


def test_backslash_escape_round_trips() -> None:
    assert ids(f"SELECT Id FROM Account WHERE Name = {soql_quote('Back' + chr(92) + 'slash')}") == ["001E"]


@pytest.mark.parametrize(
    ("literal", "expected"),
    [(r"'a\nb'", "a\nb"), (r"'\t'", "\t"), (r"'\"'", '"'), (r"'\u00e6'", "æ"), (r"'\N'", "\n")],
)
def test_escape_sequences_decode(literal: str, expected: str) -> None:
    (token,) = tokenize(literal)
    assert "".join(char for char, _ in token.chars) == expected


@pytest.mark.parametrize("bad", [r"'\q'", r"'\u12'", "'open", "'ends with backslash\\"])
def test_bad_string_literals_are_malformed(bad: str) -> None:
    with pytest.raises(SoqlError) as caught:
        parse(f"SELECT Id FROM Account WHERE Name = {bad}", SCHEMA)
    assert caught.value.code == "MALFORMED_QUERY"


def test_comparisons_on_numbers_skip_nulls() -> None:
    assert ids("SELECT Id FROM Account WHERE NumberOfEmployees >= 10") == ["001A", "001B"]
    assert ids("SELECT Id FROM Account WHERE NumberOfEmployees < 10") == ["001D", "001E"]


def test_null_comparisons() -> None:
    assert ids("SELECT Id FROM Account WHERE NumberOfEmployees = null") == ["001C"]
    assert ids("SELECT Id FROM Account WHERE Website != NULL") == ["001B"]


def test_not_equal_includes_nulls_as_soql_does() -> None:
    assert ids("SELECT Id FROM Account WHERE NumberOfEmployees != 10") == ["001B", "001C", "001D", "001E"]
    assert ids("SELECT Id FROM Account WHERE NumberOfEmployees <> 10") == ["001B", "001C", "001D", "001E"]


def test_booleans_and_dates() -> None:
    assert ids("SELECT Id FROM Account WHERE Registry_Sync_Opt_Out__c = true") == ["001C"]
    assert ids("SELECT Id FROM Account WHERE Registry_Sync_Opt_Out__c = FALSE") == ["001A"]
    assert ids("SELECT Id FROM Account WHERE Founded_Date__c > 2000-01-01") == ["001D"]


def test_in_and_not_in() -> None:
    assert ids("SELECT Id FROM Account WHERE Id IN ('001a', '001C')") == ["001A", "001C"]
    assert ids("SELECT Id FROM Account WHERE Id NOT IN ('001A','001B','001C')") == ["001D", "001E"]


def test_like_wildcards_and_escaped_wildcards() -> None:
    assert ids("SELECT Id FROM Account WHERE Name LIKE 'acme%'") == ["001A", "001B"]
    assert ids("SELECT Id FROM Account WHERE Name LIKE 'Bolt_1__\\%'") == ["001C"]
    assert ids("SELECT Id FROM Account WHERE Name LIKE 'Bolt\\_%'") == ["001C"]
    assert ids("SELECT Id FROM Account WHERE Name LIKE 'Bol\\_%'") == []


def test_and_or_not_with_parentheses() -> None:
    soql = "SELECT Id FROM Account WHERE (Name LIKE 'acme%' OR Id = '001E') AND NOT NumberOfEmployees > 100"
    assert ids(soql) == ["001A", "001E"]
    assert ids("SELECT Id FROM Account WHERE NOT (Id = '001A' OR Id = '001B')") == ["001C", "001D", "001E"]


def test_mixing_and_or_without_parentheses_is_malformed_as_in_salesforce() -> None:
    with pytest.raises(SoqlError) as caught:
        parse("SELECT Id FROM Account WHERE Id = 'a' AND Id = 'b' OR Id = 'c'", SCHEMA)
    assert caught.value.code == "MALFORMED_QUERY"


def test_order_by_limit_offset_with_nulls_placement() -> None:
    assert ids("SELECT Id FROM Account ORDER BY NumberOfEmployees") == [
        "001C",
        "001D",
        "001E",
        "001A",
        "001B",
    ]
    assert ids("SELECT Id FROM Account ORDER BY NumberOfEmployees DESC LIMIT 2") == ["001B", "001A"]
    assert ids("SELECT Id FROM Account ORDER BY NumberOfEmployees DESC NULLS FIRST LIMIT 1") == ["001C"]
    assert ids("SELECT Id FROM Account ORDER BY NumberOfEmployees ASC NULLS LAST LIMIT 2 OFFSET 3") == [
        "001B",
        "001C",
    ]


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Nope__c FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE Nope = 1", "INVALID_FIELD"),
        ("SELECT Id FROM Account ORDER BY Nope", "INVALID_FIELD"),
        ("SELECT Id FROM Contact", "INVALID_TYPE"),
        ("SELECT FROM Account", "MALFORMED_QUERY"),
        ("SELECT Id Account", "MALFORMED_QUERY"),
        ("SELECT Id, Id FROM Account", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE Name = ", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE Name LIKE 5", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE (Name = 'a'", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account LIMIT -1", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account; DELETE", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE Name = 'a' garbage", "MALFORMED_QUERY"),
    ],
)
def test_errors_carry_salesforce_error_codes(soql: str, code: str) -> None:
    with pytest.raises(SoqlError) as caught:
        parse(soql, SCHEMA)
    assert caught.value.code == code


def test_client_build_soql_selects_only_the_given_fields_and_rejects_bad_names() -> None:
    assert build_soql("Account", ["Id", "Name", "Id"]) == "SELECT Id, Name FROM Account"
    assert build_soql("Account", ["Id"], "Name = 'a'") == "SELECT Id FROM Account WHERE Name = 'a'"
    with pytest.raises(ValueError, match="field API names"):
        build_soql("Account", ["Id", "Name FROM User --"])
    assert parse(build_soql("Account", ["Id", "Name"]), SCHEMA).fields == ("Id", "Name")
