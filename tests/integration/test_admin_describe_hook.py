"""``regsync connection apply`` runs the describe hook with the stored CRM credential before storing."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import RegsyncEnv
from tests.connection_files import BRREG, acme_toml
from worker.cli import admin
from worker.cli.main import app
from worker.connections.spec import ConnectionSpec
from worker.errors import MappingError

CLIENT_SECRET = "cs_0f1e2d3c4b5a69788796a5b4"
TOML = acme_toml(registry=BRREG)

pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)


@pytest.fixture
def calls(env: RegsyncEnv, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []

    def checker(spec: ConnectionSpec, credential: str) -> None:
        seen.append((spec.name, credential))
        if "Broken__c" in spec.crm_fields():
            raise MappingError("mapping does not fit Account: name → 'Broken__c' does not exist")

    monkeypatch.setattr(admin, "describe_checker", checker)
    monkeypatch.setenv("REGSYNC_ACTOR", "alice")
    return seen


def _invoke(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), input=stdin)
    return result.exit_code, result.output


def test_the_check_is_skipped_until_the_credential_is_stored(
    calls: list[tuple[str, str]], tmp_path: Path
) -> None:
    (tmp_path / "acme.toml").write_text(TOML, encoding="utf-8")

    code, output = _invoke("connection", "apply", str(tmp_path / "acme.toml"))

    assert code == 0, output
    assert "describe check skipped" in output
    assert calls == []


def test_the_check_gets_the_stored_credential_and_can_refuse_the_spec(
    calls: list[tuple[str, str]], tmp_path: Path
) -> None:
    path = tmp_path / "acme.toml"
    path.write_text(TOML, encoding="utf-8")
    _invoke("connection", "apply", str(path))
    _invoke("secret", "set", "acme", "salesforce_client_secret", stdin=CLIENT_SECRET)

    path.write_text(TOML.replace('"Name"', '"Broken__c"'), encoding="utf-8")
    code, output = _invoke("connection", "apply", str(path))

    assert calls == [("acme", CLIENT_SECRET)]
    assert code == 2
    assert "Broken__c" in output and CLIENT_SECRET not in output
    _, shown = _invoke("connection", "show", "acme")
    assert "'Name'" in shown and "Broken__c" not in shown


def test_skip_describe_does_not_call_the_check(calls: list[tuple[str, str]], tmp_path: Path) -> None:
    (tmp_path / "acme.toml").write_text(TOML, encoding="utf-8")

    code, output = _invoke("connection", "apply", str(tmp_path / "acme.toml"), "--skip-describe")

    assert code == 0, output
    assert calls == []
