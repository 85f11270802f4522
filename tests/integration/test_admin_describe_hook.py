"""``connection apply`` and ``secret set`` run the real describe + mapping check against the TLS sandbox org.

No checker is faked: the CLI logs in with the stored credential, describes the object, checks the mapping
(missing fields, restricted picklists, lengths) and reads the integration user's permission sets. The README's
order (apply, then `secret set`) checks the mapping with no second apply (issue 10, acceptance 5), and excess
rights such as Modify All Data are reported at apply (acceptance 8).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import RegsyncEnv
from worker.cli.main import app
from worker.sandbox.salesforce import SandboxSalesforce
from worker.sandbox.tls import SandboxCA

CLIENT_ID = "3MVG9-hook-consumer-key"
CLIENT_SECRET = "cs_0f1e2d3c4b5a69788796a5b4"

pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)


#: The fields the sandbox's default permission set lets the integration user edit, and no others.
DEMO_MAPPING = (
    'name = { field = "Name" }',
    'status = { field = "Registry_Status__c" }',
    'legal_form = { field = "Legal_Form__c" }',
    'employees = { field = "NumberOfEmployees" }',
    'city = { field = "BillingCity" }',
    'nace_code = { field = "Industry_Code__c" }',
    'website = { field = "Website" }',
)


def toml(org: SandboxSalesforce, *mapping: str) -> str:
    lines = mapping or ('name = { field = "Name" }', 'status = { field = "Registry_Status__c" }')
    return (
        f"""\
name = "acme"

[salesforce]
token_url = "{org.token_url}"
client_id = "{CLIENT_ID}"
org_number_field = "Org_Number__c"
country = "NO"

[registry]
provider = "brreg"
base_url = "https://data.brreg.no/enhetsregisteret/api"

[mapping]
"""
        + "\n".join(lines)
        + "\n"
    )


@pytest.fixture
def org(env: RegsyncEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxSalesforce]:
    ca = SandboxCA(tmp_path / "ca")
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        monkeypatch.setenv(name, str(ca.bundle_path))
    monkeypatch.setenv("REGSYNC_ACTOR", "alice")
    sandbox = SandboxSalesforce(ca, [], client_id=CLIENT_ID, client_secret=CLIENT_SECRET).start()
    yield sandbox
    sandbox.stop()


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), input=stdin)
    return result.exit_code, result.output


def described(org: SandboxSalesforce) -> int:
    return sum(request.path.endswith("/sobjects/Account/describe") for request in org.requests)


def test_the_readme_order_checks_the_mapping_at_secret_set(org: SandboxSalesforce, tmp_path: Path) -> None:
    path = tmp_path / "acme.toml"
    path.write_text(toml(org, 'name = { field = "Broken__c" }'), encoding="utf-8")

    applied = invoke("connection", "apply", str(path))
    before_secret = described(org)
    code, output = invoke("secret", "set", "acme", "salesforce_client_secret", stdin=CLIENT_SECRET)

    assert applied[0] == 0 and "describe check skipped" in applied[1] and before_secret == 0
    assert code == 2, output
    assert "secret salesforce_client_secret set for acme" in output  # stored; the mapping is what is wrong
    assert "mapping does not fit Account: name → 'Broken__c' does not exist" in output
    assert described(org) == 1 and CLIENT_SECRET not in output


def test_secret_set_passes_a_fitting_mapping_and_reports_what_may_not_fit(
    org: SandboxSalesforce, tmp_path: Path
) -> None:
    org.alter_field("Registry_Status__c", restricted=True, picklist=("active", "dissolved", "bankrupt"))
    (tmp_path / "acme.toml").write_text(toml(org, *DEMO_MAPPING), encoding="utf-8")
    invoke("connection", "apply", str(tmp_path / "acme.toml"))

    code, output = invoke("secret", "set", "acme", "salesforce_client_secret", stdin=CLIENT_SECRET)

    assert code == 0, output
    assert "describe check passed: the mapping fits Account" in output
    assert "warning: status → 'Registry_Status__c' is a restricted picklist without deleted, " in output
    assert "least privilege: the integration user holds no right the mapping does not need" in output


def test_apply_with_a_stored_credential_refuses_a_mapping_that_does_not_fit(
    org: SandboxSalesforce, tmp_path: Path
) -> None:
    path = tmp_path / "acme.toml"
    path.write_text(toml(org), encoding="utf-8")
    invoke("connection", "apply", str(path))
    invoke("secret", "set", "acme", "salesforce_client_secret", stdin=CLIENT_SECRET)
    org.alter_field("Name", updateable=False)

    code, output = invoke("connection", "apply", str(path))
    path.write_text(toml(org, 'name = { field = "Name" }', 'founded = { field = "CreatedDate" }'))
    changed = invoke("connection", "apply", str(path))

    assert code == 2 and "name → 'Name' is not updateable" in output
    assert changed[0] == 2 and "founded → 'CreatedDate' is not updateable" in changed[1]
    _, shown = invoke("connection", "show", "acme")
    assert "CreatedDate" not in shown  # refused specs are not stored
    assert described(org) == 3


def test_modify_all_data_is_reported_at_apply(org: SandboxSalesforce, tmp_path: Path) -> None:
    path = tmp_path / "acme.toml"
    path.write_text(toml(org, *DEMO_MAPPING), encoding="utf-8")
    invoke("connection", "apply", str(path))
    invoke("secret", "set", "acme", "salesforce_client_secret", stdin=CLIENT_SECRET)
    admin = org.permissions.assign("Integration_Admin", modify_all_data=True)
    org.permissions.grant_object(admin, "Contact", ("Read", "Edit", "Delete"))
    org.permissions.grant_fields(admin, ["Account.Phone"])

    code, output = invoke("connection", "apply", str(path))

    assert code == 0, output
    assert "least privilege: the integration user holds Modify All Data (from permission set " in output
    assert "'Integration_Admin')" in output
    assert "edit, delete on Contact (from permission set 'Integration_Admin')" in output
    assert "edit on unmapped Account field(s) Phone (from permission set 'Integration_Admin')" in output
    queried = [r.query["q"][0] for r in org.requests if "q" in r.query]
    assert [q.split(" FROM ")[1].split()[0] for q in queried] == [
        "PermissionSetAssignment",
        "PermissionSet",
        "ObjectPermissions",
        "FieldPermissions",
    ] * 2


def test_skip_describe_makes_no_call(org: SandboxSalesforce, tmp_path: Path) -> None:
    (tmp_path / "acme.toml").write_text(toml(org), encoding="utf-8")
    invoke("connection", "apply", str(tmp_path / "acme.toml"))
    invoke("secret", "set", "acme", "salesforce_client_secret", stdin=CLIENT_SECRET)
    before = len(org.requests)

    code, output = invoke("connection", "apply", str(tmp_path / "acme.toml"), "--skip-describe")

    assert code == 0, output
    assert "describe check skipped (--skip-describe)" in output and len(org.requests) == before


def test_a_secret_salesforce_refuses_is_stored_but_the_check_fails_loudly(
    org: SandboxSalesforce, tmp_path: Path
) -> None:
    (tmp_path / "acme.toml").write_text(toml(org), encoding="utf-8")
    invoke("connection", "apply", str(tmp_path / "acme.toml"))

    code, output = invoke("secret", "set", "acme", "salesforce_client_secret", stdin="wrong-secret-0a1b2c3d")

    assert code == 1, output
    assert "Salesforce refused the token request (invalid_client)" in output
    assert "wrong-secret-0a1b2c3d" not in output and described(org) == 0
