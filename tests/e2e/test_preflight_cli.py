"""Issue 10 through the CLI as subprocesses: missing secrets refuse `run`, `backfill` and `enable` (exit 2, the
secret named); the README order (apply, then `secret set`) checks the mapping against the TLS sandbox org; a
user with Modify All Data is reported at apply and, with ``require_least_privilege = true``, refused at `enable`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RegsyncEnv
from tests.connection_files import acme_toml
from worker.sandbox.salesforce import SandboxSalesforce
from worker.sandbox.tls import SandboxCA

pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)

REPO = Path(__file__).resolve().parents[2]
CLIENT_ID = "3MVG9-preflight"
CLIENT_SECRET = "cs-preflight-7e6d5c4b3a29"
MAPPING = (
    'name = { field = "Name" }',
    'status = { field = "Registry_Status__c" }',
    'legal_form = { field = "Legal_Form__c" }',
    'employees = { field = "NumberOfEmployees" }',
    'city = { field = "BillingCity" }',
    'nace_code = { field = "Industry_Code__c" }',
    'website = { field = "Website" }',
)


def regsync(cwd: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "COLUMNS": "200", "PYTHONIOENCODING": "utf-8", "REGSYNC_ACTOR": "alice"}
    return subprocess.run(
        [sys.executable, "-m", "worker.cli.main", *args],
        capture_output=True, text=True, encoding="utf-8", cwd=cwd, env=environ, timeout=60, check=False,
        input=stdin,
    )  # fmt: skip


@pytest.fixture
def org(env: RegsyncEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxSalesforce]:
    ca = SandboxCA(tmp_path / "ca")
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        monkeypatch.setenv(name, str(ca.bundle_path))
    sandbox = SandboxSalesforce(ca, [], client_id=CLIENT_ID, client_secret=CLIENT_SECRET).start()
    yield sandbox
    sandbox.stop()


def sandbox_file(org: SandboxSalesforce, *mapping: str, least_privilege: bool = False) -> str:
    text = acme_toml(
        *(mapping or MAPPING),
        registry='provider = "brreg"\nbase_url = "https://data.brreg.no/enhetsregisteret/api"',
    )
    text = text.replace("https://acme.my.salesforce.com/services/oauth2/token", org.token_url)
    text = text.replace('"3MVG9abcdef"', f'"{CLIENT_ID}"').replace('"OrgNr__c"', '"Org_Number__c"')
    flag = "require_least_privilege = true\n" if least_privilege else ""
    return text.replace('country = "NO"\n', f'country = "NO"\n{flag}')


def test_run_backfill_and_enable_refuse_while_a_secret_is_missing(env: RegsyncEnv, tmp_path: Path) -> None:
    (tmp_path / "acme.toml").write_text(acme_toml(), encoding="utf-8")  # Proff: both secrets needed
    assert regsync(tmp_path, "connection", "apply", "acme.toml").returncode == 0

    refused = [
        regsync(tmp_path, *command) for command in (["run", "acme"], ["backfill", "acme"], ["enable", "acme"])
    ]
    regsync(tmp_path, "secret", "set", "acme", "registry_token", stdin="proff-token-0a1b2c3d4e5f")
    still = regsync(tmp_path, "run", "acme", "--wait")

    for done in refused:
        assert done.returncode == 2, done.stderr
        assert "connection acme cannot run: salesforce_client_secret, registry_token not set" in done.stderr
        assert "`regsync secret set acme salesforce_client_secret`" in done.stderr
    assert still.returncode == 2 and "salesforce_client_secret not set" in still.stderr
    assert "registry_token" not in still.stderr
    assert json.loads(regsync(tmp_path, "runs", "list", "--json").stdout) == []  # nothing was queued
    shown = json.loads(regsync(tmp_path, "connection", "show", "acme", "--json").stdout)
    assert shown["enabled"] is False


def test_the_readme_order_checks_the_mapping_without_a_second_apply(
    org: SandboxSalesforce, tmp_path: Path
) -> None:
    (tmp_path / "acme.toml").write_text(sandbox_file(org, 'name = { field = "Nme" }'), encoding="utf-8")

    applied = regsync(tmp_path, "connection", "apply", "acme.toml")
    secret = regsync(tmp_path, "secret", "set", "acme", "salesforce_client_secret", stdin=CLIENT_SECRET)

    assert applied.returncode == 0 and "describe check skipped" in applied.stderr
    assert secret.returncode == 2, secret.stdout + secret.stderr
    assert "secret salesforce_client_secret set for acme" in secret.stdout
    assert "mapping does not fit Account: name → 'Nme' does not exist" in secret.stderr
    assert CLIENT_SECRET not in secret.stdout + secret.stderr


def test_modify_all_data_is_reported_at_apply_and_refused_at_enable(
    org: SandboxSalesforce, tmp_path: Path
) -> None:
    org.permissions.assign("Regsync_Admin_Bundle", "Regsync admin bundle", modify_all_data=True)
    (tmp_path / "strict.toml").write_text(sandbox_file(org, least_privilege=True), encoding="utf-8")
    (tmp_path / "lenient.toml").write_text(sandbox_file(org), encoding="utf-8")
    regsync(tmp_path, "connection", "apply", "strict.toml")
    regsync(tmp_path, "secret", "set", "acme", "salesforce_client_secret", stdin=CLIENT_SECRET)

    applied = regsync(tmp_path, "connection", "apply", "strict.toml")
    refused = regsync(tmp_path, "enable", "acme")
    disabled = json.loads(regsync(tmp_path, "connection", "show", "acme", "--json").stdout)["enabled"]
    regsync(tmp_path, "connection", "apply", "lenient.toml")
    enabled = regsync(tmp_path, "enable", "acme", "--without-notices")  # the file has no alert channel

    reported = "least privilege: the integration user holds Modify All Data (from permission set 'Regsync_Admin_Bundle"
    reported += "')"
    assert applied.returncode == 0 and reported in applied.stderr  # acceptance 8: reported at apply
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "acme sets require_least_privilege" in refused.stderr and "Modify All Data" in refused.stderr
    assert "Remove them from permission set 'Regsync_Admin_Bundle'" in refused.stderr
    assert disabled is False
    assert enabled.returncode == 0 and "acme enabled" in enabled.stdout and reported in enabled.stderr
