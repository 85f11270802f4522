"""SalesforceClient against the sandbox org over real TLS: auth flows, paging, collections, faults, limits."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from worker.connections.spec import ConnectionSpec, parse_spec
from worker.crm.auth import TokenCache
from worker.crm.describe_check import check_mapping
from worker.crm.port import ApiUsage, WriteResult
from worker.crm.salesforce import SalesforceClient
from worker.crm.soql import soql_quote
from worker.crm.write_retry import RetryPolicy
from worker.errors import CrmAuthError, CrmError, CrmLimitExceeded, CrmTransientError, MappingError
from worker.sandbox.salesforce import SandboxSalesforce
from worker.sandbox.tls import RecordedRequest, SandboxCA

CLIENT_ID = "3MVG9-sandbox-consumer-key"
SECRET = "s3cr3t-client-secret-value"
USERNAME = "integration@regsync.example"
FIELDS = ["Id", "Org_Number__c", "Name"]


def accounts(count: int) -> list[dict[str, Any]]:
    return [
        {
            "Id": f"001{i:012d}AAA",
            "Name": f"Company {i}",
            "Org_Number__c": f"{900000000 + i}",
            "BillingCountryCode": "NO",
            "NumberOfEmployees": i,
        }
        for i in range(1, count + 1)
    ]


def make_spec(sandbox: SandboxSalesforce, **salesforce: Any) -> ConnectionSpec:
    return parse_spec(
        {
            "name": "acme",
            "salesforce": {
                "token_url": sandbox.token_url,
                "client_id": CLIENT_ID,
                "org_number_field": "Org_Number__c",
                "country_field": "BillingCountryCode",
                **salesforce,
            },
            "registry": {"provider": "brreg", "base_url": "https://registry.example"},
            "mapping": {"name": {"field": "Name"}, "employees": {"field": "NumberOfEmployees"}},
        }
    )


@pytest.fixture
def ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SandboxCA:
    authority = SandboxCA(tmp_path / "ca")
    monkeypatch.setenv("SSL_CERT_FILE", str(authority.bundle_path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(authority.bundle_path))
    return authority


@pytest.fixture(scope="module")
def rsa_key() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private.decode(), public.decode()


@pytest.fixture
def sandbox(ca: SandboxCA, rsa_key: tuple[str, str]) -> Iterator[SandboxSalesforce]:
    org = SandboxSalesforce(
        ca,
        accounts(50),
        client_id=CLIENT_ID,
        client_secret=SECRET,
        jwt_public_key_pem=rsa_key[1],
        username=USERNAME,
    )
    org.start()
    yield org
    org.stop()


#: Lock retries with short waits: four sends of a locked record in well under a second.
FAST_RETRY = RetryPolicy(attempts=4, base_s=0.01, max_s=0.05)


@pytest.fixture
def client(sandbox: SandboxSalesforce) -> Iterator[SalesforceClient]:
    with SalesforceClient(make_spec(sandbox), SECRET, timeout_s=10, retry=FAST_RETRY) as crm:
        yield crm


def patched_ids(request: RecordedRequest) -> list[str]:
    return [item["id"] for item in json.loads(request.body)["records"]]


def bearer_tokens(sandbox: SandboxSalesforce) -> set[str]:
    return {r.headers["authorization"].split(" ", 1)[1] for r in sandbox.api_requests()}


# --- authentication ---------------------------------------------------------------------------------------


def test_client_credentials_authenticates_lazily_once(
    sandbox: SandboxSalesforce, client: SalesforceClient
) -> None:
    assert sandbox.tokens_issued == 0  # constructing the client makes no call
    client.describe()
    client.read_by_ids(["001000000000001AAA"], ["Name"])
    assert sandbox.tokens_issued == 1
    (token_request,) = [r for r in sandbox.requests if r.path == "/services/oauth2/token"]
    assert b"grant_type=client_credentials" in token_request.body
    assert client.calls == 2


def test_jwt_bearer_signs_an_rs256_assertion(sandbox: SandboxSalesforce, rsa_key: tuple[str, str]) -> None:
    spec = make_spec(sandbox, auth="jwt_bearer", username=USERNAME)
    with SalesforceClient(spec, rsa_key[0]) as crm:
        assert len(list(crm.stream_records(FIELDS))) == 50
    (token_request,) = [r for r in sandbox.requests if r.path == "/services/oauth2/token"]
    form = dict(pair.split("=", 1) for pair in token_request.body.decode().split("&"))
    assert form["grant_type"] == "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
    claims = jwt.decode(form["assertion"], rsa_key[1], algorithms=["RS256"], audience=sandbox.url)
    assert (claims["iss"], claims["sub"]) == (CLIENT_ID, USERNAME)
    assert 150 <= claims["exp"] - time.time() <= 180


def test_jwt_signed_with_another_key_is_refused(sandbox: SandboxSalesforce) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = stranger.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    spec = make_spec(sandbox, auth="jwt_bearer", username=USERNAME)
    with SalesforceClient(spec, pem) as crm, pytest.raises(CrmAuthError, match="invalid_grant") as caught:
        crm.describe()
    assert "PRIVATE KEY" not in caught.value.message


def test_jwt_for_another_user_is_refused(sandbox: SandboxSalesforce, rsa_key: tuple[str, str]) -> None:
    with (
        SalesforceClient(
            make_spec(sandbox, auth="jwt_bearer", username="intruder@x.example"), rsa_key[0]
        ) as crm,
        pytest.raises(CrmAuthError, match="invalid_grant"),
    ):
        crm.describe()


def test_clients_of_one_process_share_one_login(sandbox: SandboxSalesforce) -> None:
    spec = make_spec(sandbox)
    for _ in range(3):  # three chunks of one run in one worker process
        with SalesforceClient(spec, SECRET) as crm:
            crm.read_by_ids(["001000000000001AAA"], ["Name"])
    assert sandbox.tokens_issued == 1
    assert len(bearer_tokens(sandbox)) == 1


def test_a_cached_token_is_never_handed_to_another_secret(sandbox: SandboxSalesforce) -> None:
    spec = make_spec(sandbox)
    with SalesforceClient(spec, SECRET) as crm:
        crm.describe()
    with (
        SalesforceClient(spec, "not-the-secret") as crm,
        pytest.raises(CrmAuthError, match="invalid_client"),
    ):
        crm.describe()
    assert sandbox.tokens_issued == 1  # the wrong secret got no token


def test_a_token_refused_by_salesforce_is_replaced_for_every_client(sandbox: SandboxSalesforce) -> None:
    spec = make_spec(sandbox)
    with SalesforceClient(spec, SECRET) as first, SalesforceClient(spec, SECRET) as second:
        first.describe()
        sandbox.expire_sessions()
        first.describe()  # INVALID_SESSION_ID, one new login
        second.describe()  # starts with the new token: no refused call, no third login
    assert sandbox.tokens_issued == 2 and first.calls == 3 and second.calls == 1


def test_an_old_token_is_not_reused(sandbox: SandboxSalesforce) -> None:
    now = [0.0]
    cache = TokenCache(max_age_s=600, clock=lambda: now[0])
    spec = make_spec(sandbox).salesforce
    logins = iter([("t1", "https://a.example"), ("t2", "https://a.example")])
    assert cache.token(spec, SECRET, lambda: next(logins))[0] == "t1"
    now[0] = 599.0
    assert cache.token(spec, SECRET, lambda: next(logins))[0] == "t1"
    now[0] = 600.0
    assert cache.token(spec, SECRET, lambda: next(logins))[0] == "t2"
    now[0] = 1300.0  # a rotated secret logs in; the old secret's token, now expired, is forgotten
    assert cache.token(spec, "rotated", lambda: ("t3", "https://a.example"))[0] == "t3"
    assert [token for _at, token, _url in cache._tokens.values()] == ["t3"]


def test_wrong_client_secret_is_an_auth_error_without_the_secret(sandbox: SandboxSalesforce) -> None:
    spec = make_spec(sandbox)
    with (
        SalesforceClient(spec, "not-the-secret") as crm,
        pytest.raises(CrmAuthError, match="invalid_client") as caught,
    ):
        crm.describe()
    assert "not-the-secret" not in caught.value.message


def test_expired_session_reauthenticates_exactly_once(
    sandbox: SandboxSalesforce, client: SalesforceClient
) -> None:
    client.describe()
    sandbox.expire_sessions()
    records = client.read_by_ids(["001000000000002AAA"], ["Name"])
    assert records == [{"Id": "001000000000002AAA", "Name": "Company 2"}]
    assert sandbox.tokens_issued == 2
    statuses = [r.path.rsplit("/", 2)[-2] for r in sandbox.api_requests()]
    assert statuses == ["Account", "sobjects", "sobjects"]  # describe, the 401, the retry
    assert client.calls == 3


def test_session_expiring_between_pages_does_not_break_the_stream(ca: SandboxCA) -> None:
    org = SandboxSalesforce(ca, accounts(4500), client_id=CLIENT_ID, client_secret=SECRET).start()
    try:
        with SalesforceClient(make_spec(org), SECRET) as crm:
            stream = crm.stream_records(FIELDS)
            first = [next(stream) for _ in range(2000)]
            org.expire_sessions()
            assert len(first) + len(list(stream)) == 4500
        assert org.tokens_issued == 2
    finally:
        org.stop()


def test_a_fresh_session_that_is_refused_again_is_an_auth_error(
    sandbox: SandboxSalesforce, client: SalesforceClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox._oauth, "is_valid", lambda token: False)
    with pytest.raises(CrmAuthError, match="INVALID_SESSION_ID"):
        client.describe()
    assert sandbox.tokens_issued == 2  # the first login and exactly one re-authentication


def test_revoked_client_is_an_auth_error_naming_neither_secret_nor_token(
    sandbox: SandboxSalesforce, client: SalesforceClient
) -> None:
    client.describe()
    (token,) = bearer_tokens(sandbox)
    sandbox.revoke_client()
    with pytest.raises(CrmAuthError) as caught:
        client.read_by_ids(["001000000000001AAA"], ["Name"])
    message = caught.value.message
    assert "invalid_grant" in message
    assert SECRET not in message
    assert token not in message
    assert token not in repr(caught.value)


# --- reading ----------------------------------------------------------------------------------------------


def test_streaming_4500_records_takes_three_query_calls_selecting_only_the_fields(ca: SandboxCA) -> None:
    org = SandboxSalesforce(ca, accounts(4500), client_id=CLIENT_ID, client_secret=SECRET).start()
    try:
        with SalesforceClient(make_spec(org), SECRET) as crm:
            stream = crm.stream_records(FIELDS)
            first = next(stream)
            assert len(org.api_requests()) == 1  # a generator: one page fetched, nothing more
            rest = list(stream)
        records = [first, *rest]
        assert len(records) == 4500
        assert records[0] == {"Id": "001000000000001AAA", "Org_Number__c": "900000001", "Name": "Company 1"}
        assert len({r["Id"] for r in records}) == 4500
        first_call, *more = org.api_requests()
        assert first_call.query["q"] == ["SELECT Id, Org_Number__c, Name FROM Account"]
        assert [r.path.rsplit("-", 1)[1] for r in more] == ["2000", "4000"]
        assert crm.calls == 3
    finally:
        org.stop()


def test_stream_with_a_quoted_where_clause(client: SalesforceClient) -> None:
    where = f"Name = {soql_quote('Company 7')} OR Name = {soql_quote(chr(39) + ' OR Name != ' + chr(39))}"
    assert [r["Id"] for r in client.stream_records(["Id"], where=where)] == ["001000000000007AAA"]


def test_malformed_where_is_a_permanent_crm_error(client: SalesforceClient) -> None:
    with pytest.raises(CrmError, match="MALFORMED_QUERY") as caught:
        list(client.stream_records(["Id"], where="Name = 'a' AND Id = 'b' OR Id = 'c'"))
    assert not caught.value.transient


def test_unknown_field_is_an_invalid_field_error(client: SalesforceClient) -> None:
    with pytest.raises(CrmError, match="INVALID_FIELD"):
        list(client.stream_records(["Id", "Nope__c"]))


def test_read_by_ids_is_one_call_and_drops_deleted_records(
    sandbox: SandboxSalesforce, client: SalesforceClient
) -> None:
    ids = ["001000000000003AAA", "001000000000004AAA", "001000000000005AAA"]
    sandbox.delete(["001000000000004AAA"])
    records = client.read_by_ids(ids, ["Name", "NumberOfEmployees"])
    assert records == [
        {"Id": "001000000000003AAA", "Name": "Company 3", "NumberOfEmployees": 3},
        {"Id": "001000000000005AAA", "Name": "Company 5", "NumberOfEmployees": 5},
    ]
    (call,) = sandbox.api_requests()
    assert call.method == "GET"
    assert call.path.endswith("/composite/sobjects/Account")
    assert call.query == {"ids": [",".join(ids)], "fields": ["Id,Name,NumberOfEmployees"]}


# --- writing ----------------------------------------------------------------------------------------------


def test_update_reports_per_record_success_and_validation_failures(
    sandbox: SandboxSalesforce, client: SalesforceClient
) -> None:
    long_message = "Billing address must be confirmed by Finance. " * 20
    sandbox.validation_failure(["001000000000002AAA"], long_message)
    sandbox.lock_rows(["001000000000003AAA"])
    results = client.update(
        [
            {"Id": "001000000000001AAA", "Name": "Renamed AS"},
            {"Id": "001000000000002AAA", "Name": "Blocked AS"},
            {"Id": "001000000000003AAA", "NumberOfEmployees": 99},
            {"Id": "001000000000004AAA", "NumberOfEmployees": 4},
        ]
    )
    assert results[0] == WriteResult("001000000000001AAA", True)
    assert results[1].error_code == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert results[1].message is not None and len(results[1].message) <= 300
    assert results[1].message.startswith("Billing address must be confirmed by Finance.")
    assert (results[2].success, results[2].error_code) == (False, "UNABLE_TO_LOCK_ROW")
    assert results[3].success
    state = sandbox.accounts
    assert state["001000000000001AAA"]["Name"] == "Renamed AS"
    assert state["001000000000002AAA"]["Name"] == "Company 2"
    assert sandbox.writes == {"001000000000001AAA": 1, "001000000000004AAA": 1}
    assert [change.changed for change in sandbox.changes] == [{"Name": ("Company 1", "Renamed AS")}, {}]
    describe, first, *retries = sandbox.api_requests()
    assert describe.path.endswith("/sobjects/Account/describe")  # the values are checked before the write
    assert (first.method, first.path.rsplit("/", 2)[-2:]) == ("PATCH", ["composite", "sobjects"])
    # The row stays locked: it alone is sent again, 4 sends in all, then it fails.
    assert [patched_ids(call) for call in retries] == [["001000000000003AAA"]] * 3
    assert client.calls == 5


def test_update_sends_only_the_given_fields_with_collection_attributes(
    sandbox: SandboxSalesforce, client: SalesforceClient
) -> None:
    client.describe()
    client.update([{"Id": "001000000000001AAA", "NumberOfEmployees": 12}])
    _describe, call = sandbox.api_requests()
    assert json.loads(call.body) == {
        "allOrNone": False,
        "records": [{"attributes": {"type": "Account"}, "id": "001000000000001AAA", "NumberOfEmployees": 12}],
    }


def test_a_record_locked_once_is_sent_again_alone_and_written_once(
    sandbox: SandboxSalesforce, client: SalesforceClient
) -> None:
    ids = [f"001{i:012d}AAA" for i in range(1, 21)]
    sandbox.lock_share(0.25, seed=3)

    results = client.update([{"Id": record_id, "NumberOfEmployees": 1000} for record_id in ids])

    locked = sorted(sandbox.locks_injected)
    assert 0 < len(locked) < len(ids)  # some, not all: the share is per record
    assert all(result.success for result in results)
    assert sandbox.writes == {record_id: 1 for record_id in ids}
    patches = [r for r in sandbox.api_requests() if r.method == "PATCH"]
    assert [patched_ids(call) for call in patches] == [ids, locked]
    assert client.calls == 1 + len(patches)  # the describe, then each PATCH


def test_a_value_outside_a_restricted_picklist_is_refused_before_sending(
    sandbox: SandboxSalesforce, client: SalesforceClient
) -> None:
    sandbox.alter_field("Registry_Status__c", restricted=True, picklist=("active", "dissolved"))
    sandbox.alter_field("Name", length=12)

    results = client.update(
        [
            {"Id": "001000000000001AAA", "Registry_Status__c": "bankrupt", "Name": "Short AS"},
            {"Id": "001000000000002AAA", "Registry_Status__c": "dissolved"},
            {"Id": "001000000000003AAA", "Name": "A name far too long for twelve"},
            {"Id": "001000000000004AAA", "BillingCountryCode": "US"},
        ]
    )

    assert [(r.record_id, r.success, r.error_code) for r in results] == [
        ("001000000000001AAA", False, "VALUE_DOES_NOT_FIT"),
        ("001000000000002AAA", True, None),
        ("001000000000003AAA", False, "VALUE_DOES_NOT_FIT"),
        ("001000000000004AAA", False, "VALUE_DOES_NOT_FIT"),
    ]
    assert results[0].message == "Registry_Status__c: 'bankrupt' is not a value of its restricted picklist"
    assert results[2].message == "Name: the value has 30 characters, the field holds at most 12"
    (patch,) = [r for r in sandbox.api_requests() if r.method == "PATCH"]
    assert patched_ids(patch) == ["001000000000002AAA"]
    assert b"bankrupt" not in patch.body and b"twelve" not in patch.body and b"US" not in patch.body


def test_nothing_is_patched_when_no_record_fits(sandbox: SandboxSalesforce, client: SalesforceClient) -> None:
    results = client.update([{"Id": "001000000000001AAA", "BillingCountryCode": "Norway"}])
    assert [(r.success, r.error_code) for r in results] == [(False, "VALUE_DOES_NOT_FIT")]
    assert [r.method for r in sandbox.api_requests()] == ["GET"]  # the describe only


def test_one_describe_serves_every_client_of_the_session(sandbox: SandboxSalesforce) -> None:
    spec = make_spec(sandbox)
    for _ in range(3):
        with SalesforceClient(spec, SECRET) as crm:
            crm.update([{"Id": "001000000000001AAA", "NumberOfEmployees": 7}])
    paths = [r.path.rsplit("/", 1)[-1] for r in sandbox.api_requests()]
    assert paths == ["describe", "sobjects", "sobjects", "sobjects"]


def test_the_sandbox_refuses_a_restricted_picklist_value_itself(
    sandbox: SandboxSalesforce, client: SalesforceClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import worker.crm.salesforce as adapter

    monkeypatch.setattr(adapter, "refusals", lambda records, fields: {})  # what an unchecked client sends
    (result,) = client.update([{"Id": "001000000000001AAA", "BillingCountryCode": "Norway"}])
    assert (result.success, result.error_code) == (False, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")


# --- limits and faults ------------------------------------------------------------------------------------


def test_sforce_limit_info_is_recorded_in_usage(sandbox: SandboxSalesforce, client: SalesforceClient) -> None:
    sandbox.set_api_usage(1234, 15000)
    client.describe()
    assert client.usage == ApiUsage(used=1235, limit=15000)
    client.read_by_ids(["001000000000001AAA"], ["Name"])
    assert client.usage == ApiUsage(used=1236, limit=15000)


def test_exhausted_daily_limit_is_limit_exceeded(
    sandbox: SandboxSalesforce, client: SalesforceClient
) -> None:
    sandbox.set_api_usage(100, 100)
    with pytest.raises(CrmLimitExceeded, match="REQUEST_LIMIT_EXCEEDED") as caught:
        client.describe()
    assert not caught.value.transient
    assert client.usage == ApiUsage(used=100, limit=100)  # read from the 403 too


def test_server_error_is_transient(
    sandbox: SandboxSalesforce, client: SalesforceClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(sandbox._store, "retrieve", broken)
    with pytest.raises(CrmTransientError):
        client.read_by_ids(["001000000000001AAA"], ["Name"])


def test_slow_salesforce_is_a_transient_timeout(sandbox: SandboxSalesforce) -> None:
    with SalesforceClient(make_spec(sandbox), SECRET, timeout_s=0.3) as crm:
        crm.describe()
        sandbox.latency_s = 1.0
        with pytest.raises(CrmTransientError, match="Timeout"):
            crm.read_by_ids(["001000000000001AAA"], ["Name"])


# --- describe ---------------------------------------------------------------------------------------------


def test_describe_feeds_check_mapping(sandbox: SandboxSalesforce, client: SalesforceClient) -> None:
    fields = client.describe()
    assert fields["Registry_Status__c"].type == "picklist"
    assert fields["NumberOfEmployees"].type == "int"
    assert not fields["CreatedDate"].updateable
    check_mapping(make_spec(sandbox), fields)
    bad = parse_spec(
        make_spec(sandbox).model_dump(mode="json")
        | {"mapping": {"name": {"field": "Nope__c"}, "founded": {"field": "CreatedDate"}}}
    )
    with pytest.raises(MappingError) as caught:
        check_mapping(bad, fields)
    assert "'Nope__c' does not exist" in caught.value.message
    assert "'CreatedDate' is not updateable" in caught.value.message
