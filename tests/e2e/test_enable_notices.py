"""Issue 12, acceptance 5 (second half) through the CLI: notices are mandatory.

`regsync enable` refuses a connection with no alert channel (one line, exit 2, what to do) unless
`--without-notices` is given, and that choice is audited as ``{"enabled": true, "without_notices": true}``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import RegsyncEnv
from tests.connection_files import acme_toml
from tests.e2e.test_schedule_cli import CLIENT_SECRET, org, regsync
from worker.sandbox.salesforce import SandboxSalesforce

__all__ = ["org"]  # the fixture, imported to be used here

pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)

WEBHOOK = """
[alerts.channels.oncall]
type = "webhook"
url = "https://hooks.example.com/regsync"
"""


def connection_file(org: SandboxSalesforce, alerts: str = "") -> str:
    text = acme_toml(extra=alerts).replace(
        "https://acme.my.salesforce.com/services/oauth2/token", org.token_url
    )
    return text.replace('"OrgNr__c"', '"Org_Number__c"')


def applied(tmp_path: Path, text: str) -> None:
    (tmp_path / "acme.toml").write_text(text, encoding="utf-8")
    done = regsync(tmp_path, "connection", "apply", "acme.toml")
    assert done.returncode == 0, done.stderr


def enable_events(tmp_path: Path) -> list[dict[str, object]]:
    events = json.loads(regsync(tmp_path, "audit", "list", "--json").stdout)
    return [e for e in events if e["action"] == "connection.enable"]


def is_enabled(tmp_path: Path) -> bool:
    return bool(json.loads(regsync(tmp_path, "connection", "show", "acme", "--json").stdout)["enabled"])


def test_enable_without_a_channel_is_refused_unless_without_notices_which_is_audited(
    env: RegsyncEnv, org: SandboxSalesforce, tmp_path: Path
) -> None:
    applied(tmp_path, connection_file(org))
    for name, value in (("salesforce_client_secret", CLIENT_SECRET), ("registry_token", "proff-token-1a2b")):
        assert regsync(tmp_path, "secret", "set", "acme", name, stdin=value).returncode == 0

    refused = regsync(tmp_path, "enable", "acme")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    *_report, error = refused.stderr.splitlines()  # the enable check's report, then one error line
    assert error.startswith("error: acme has no alert channel") and "Traceback" not in refused.stderr
    assert "[alerts]" in refused.stderr and "--without-notices" in refused.stderr
    assert not is_enabled(tmp_path) and enable_events(tmp_path) == []

    silent = regsync(tmp_path, "enable", "acme", "--without-notices", "--actor", "bob")
    assert silent.returncode == 0, silent.stderr
    assert is_enabled(tmp_path)
    [event] = enable_events(tmp_path)
    assert (event["actor"], event["after"]) == ("bob", {"enabled": True, "without_notices": True})


def test_enable_with_a_channel_needs_no_flag_and_audits_plain_enabled(
    env: RegsyncEnv, org: SandboxSalesforce, tmp_path: Path
) -> None:
    applied(tmp_path, connection_file(org, WEBHOOK))
    assert (
        regsync(tmp_path, "secret", "set", "acme", "salesforce_client_secret", stdin=CLIENT_SECRET).returncode
        == 0
    )
    assert (
        regsync(tmp_path, "secret", "set", "acme", "registry_token", stdin="proff-token-1a2b").returncode == 0
    )

    enabled = regsync(tmp_path, "enable", "acme")

    assert enabled.returncode == 0, enabled.stderr
    assert [e["after"] for e in enable_events(tmp_path)] == [{"enabled": True}]
