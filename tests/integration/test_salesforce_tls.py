"""The Salesforce client's TLS: the CA we pass is the CA used, whatever REQUESTS_CA_BUNDLE says; https only.

Why the spy: our adapter's SSL context already trusts our CA, and urllib3 *adds* the per-request
``verify`` bundle to that context, so a wrong-but-valid environment bundle would not make a request fail
even if it leaked through. Checking the ``verify`` that reaches the transport is what proves trust_env
is off; the unloadable-bundle case additionally proves it end to end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.test_salesforce_sandbox import CLIENT_ID, SECRET, accounts, make_spec
from worker.connections.spec import SalesforceSpec
from worker.crm.auth import fetch_token
from worker.crm.http import build_session
from worker.crm.salesforce import SalesforceClient
from worker.errors import ConfigurationError, CrmError, InsecureURL
from worker.sandbox.salesforce import SandboxSalesforce
from worker.sandbox.tls import SandboxCA


@pytest.fixture
def ca(tmp_path: Path) -> SandboxCA:
    return SandboxCA(tmp_path / "ca")


@pytest.fixture
def sandbox(ca: SandboxCA) -> Iterator[SandboxSalesforce]:
    org = SandboxSalesforce(ca, accounts(5), client_id=CLIENT_ID, client_secret=SECRET).start()
    yield org
    org.stop()


def wrong_bundle(kind: str, tmp_path: Path) -> Path:
    if kind == "other_ca":  # a valid bundle of a CA that did not sign the sandbox's certificate
        return SandboxCA(tmp_path / "other").bundle_path
    path = tmp_path / "not-a-bundle.pem"
    path.write_text("this is not a certificate\n")
    return path


@pytest.mark.parametrize("kind", ["other_ca", "unloadable"])
def test_environment_ca_bundle_cannot_override_the_bundle_we_pass(
    kind: str, ca: SandboxCA, sandbox: SandboxSalesforce, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = wrong_bundle(kind, tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.bundle_path))  # what ca_bundle_path() hands the client
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(wrong))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(wrong))

    # The trap is real here: a default Session told to verify with our CA still uses the environment's.
    naive = requests.Session()
    naive.verify = str(ca.bundle_path)
    with pytest.raises(requests.exceptions.SSLError):
        naive.post(sandbox.token_url, data={}, timeout=5)

    with SalesforceClient(make_spec(sandbox), SECRET) as client:
        adapter = client.session.get_adapter(sandbox.url)
        seen: list[Any] = []
        send = adapter.send

        def spy(request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            seen.append(kwargs.get("verify"))
            return send(request, **kwargs)

        monkeypatch.setattr(adapter, "send", spy)
        assert len(client.read_by_ids(["001000000000001AAA"], ["Name"])) == 1
    assert seen == [str(ca.bundle_path)] * 2  # the token request and the API call used our bundle
    assert client.session.trust_env is False


def test_a_server_our_ca_did_not_sign_is_a_permanent_tls_error(
    sandbox: SandboxSalesforce, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = SandboxCA(tmp_path / "other").bundle_path
    monkeypatch.setenv("SSL_CERT_FILE", str(other))
    with (
        SalesforceClient(make_spec(sandbox), SECRET) as client,
        pytest.raises(CrmError, match="TLS") as caught,
    ):
        client.describe()
    assert not caught.value.transient


def test_session_refuses_tls_below_1_2_and_plain_http(ca: SandboxCA) -> None:
    session = build_session(str(ca.bundle_path))
    adapter = session.get_adapter("https://example.invalid")
    assert adapter._context.minimum_version.name == "TLSv1_2"  # type: ignore[attr-defined]
    with pytest.raises(requests.exceptions.InvalidURL):
        session.get("http://127.0.0.1:1/", timeout=1)


def test_http_token_url_is_refused(sandbox: SandboxSalesforce, ca: SandboxCA) -> None:
    plain = sandbox.token_url.replace("https://", "http://")
    with pytest.raises(ConfigurationError, match="not an https"):
        make_spec(sandbox, token_url=plain)
    # Even a spec that skipped validation never posts credentials over plain http.
    unchecked = SalesforceSpec.model_construct(
        **make_spec(sandbox).salesforce.model_dump() | {"token_url": plain}
    )
    before = len(sandbox.requests)
    with pytest.raises(InsecureURL):
        fetch_token(unchecked, SECRET, build_session(str(ca.bundle_path)))
    assert len(sandbox.requests) == before


def test_http_instance_url_is_refused(sandbox: SandboxSalesforce, ca: SandboxCA) -> None:
    unchecked = SalesforceSpec.model_construct(
        **make_spec(sandbox).salesforce.model_dump() | {"instance_url": "http://insecure.example"}
    )
    with pytest.raises(InsecureURL):
        fetch_token(unchecked, SECRET, build_session(str(ca.bundle_path)))
