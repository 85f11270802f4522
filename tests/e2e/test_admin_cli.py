"""The admin CLI as a subprocess: apply connections, set secrets from stdin, verify the audit log.

Whatever the command, the secret value never appears in its output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.conftest import RegsyncEnv
from tests.connection_files import acme_toml

SECRET = "prf_live_5e6f7a8b9c0d1e2f1a2b"
CONNECTION_TOML = acme_toml(
    'name = { field = "Name" }', 'city = { field = "BillingCity", policy = "fill_blank" }'
)


class Cli:
    """Runs ``python -m worker.cli.main`` and remembers every output, to check none shows the secret."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.outputs: list[str] = []

    def __call__(
        self, *args: str, stdin: str = "", actor: str | None = "alice"
    ) -> subprocess.CompletedProcess[str]:
        environ = {**os.environ, "COLUMNS": "200", "PYTHONIOENCODING": "utf-8"}
        environ.pop("REGSYNC_ACTOR", None)
        if actor is not None:
            environ["REGSYNC_ACTOR"] = actor
        done = subprocess.run(
            [sys.executable, "-m", "worker.cli.main", *args],
            input=stdin,
            capture_output=True,
            text=True,
            encoding="utf-8",
            cwd=self.cwd,
            env=environ,
            timeout=60,
            check=False,
        )
        self.outputs.append(done.stdout + done.stderr)
        return done


@pytest.fixture
def cli(env: RegsyncEnv, tmp_path: Path) -> Cli:
    (tmp_path / "acme.toml").write_text(CONNECTION_TOML, encoding="utf-8")
    return Cli(tmp_path)


def _sql(url: str, statement: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


def test_apply_twice_creates_then_reports_unchanged(cli: Cli) -> None:
    first = cli("connection", "apply", "acme.toml")
    second = cli("connection", "apply", "acme.toml")

    assert first.returncode == 0, first.stderr
    assert "connection acme created" in first.stdout
    assert second.returncode == 0, second.stderr
    assert "connection acme unchanged" in second.stdout
    events = json.loads(cli("audit", "list", "--json").stdout)
    assert [(e["actor"], e["action"]) for e in events] == [("alice", "connection.create")]


def test_changed_file_is_applied_as_an_update_with_a_diff(cli: Cli) -> None:
    cli("connection", "apply", "acme.toml")
    (cli.cwd / "acme.toml").write_text(
        CONNECTION_TOML.replace("fill_blank", "protect_manual"), encoding="utf-8"
    )

    done = cli("connection", "apply", "acme.toml", "--actor", "bob")

    assert done.returncode == 0, done.stderr
    assert "connection acme updated" in done.stdout
    assert "mapping.city.policy: 'fill_blank' -> 'protect_manual'" in done.stdout


def test_secret_set_from_stdin_is_only_ever_shown_masked(cli: Cli, env: RegsyncEnv) -> None:
    cli("connection", "apply", "acme.toml")

    done = cli("secret", "set", "acme", "registry_token", stdin=SECRET + "\n")

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "secret registry_token set for acme: ••••1a2b"
    shown = json.loads(cli("connection", "show", "acme", "--json").stdout)
    assert shown["secrets"] == {"salesforce_client_secret": None, "registry_token": "••••1a2b"}
    assert "registry_token: ••••1a2b" in cli("connection", "show", "acme").stdout
    assert "salesforce_client_secret: not set" in cli("connection", "show", "acme").stdout
    others = [
        cli("--log-level", "DEBUG", "--log-format", "json", "connection", "list", "--json"),
        cli("audit", "list"),
        cli("audit", "list", "--json"),
        cli("secret", "rotate"),
        cli("connection", "apply", "acme.toml"),
    ]
    assert [other.returncode for other in others] == [0] * len(others)
    assert all(SECRET not in output for output in cli.outputs)


def test_the_stored_secret_is_encrypted(cli: Cli, env: RegsyncEnv) -> None:
    cli("connection", "apply", "acme.toml")
    cli("secret", "set", "acme", "registry_token", stdin=SECRET)

    engine = create_engine(env.database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            ciphertext = connection.execute(text("SELECT ciphertext FROM secrets")).scalar_one()
    finally:
        engine.dispose()
    assert SECRET not in ciphertext


def test_missing_actor_exits_2_and_says_how_to_give_one(cli: Cli) -> None:
    done = cli("connection", "apply", "acme.toml", actor=None)

    assert done.returncode == 2
    assert "--actor" in done.stderr and "REGSYNC_ACTOR" in done.stderr


def test_a_secret_cannot_be_passed_as_an_argument(cli: Cli) -> None:
    cli("connection", "apply", "acme.toml")

    positional = cli("secret", "set", "acme", "registry_token", SECRET)
    option = cli("secret", "set", "acme", "registry_token", f"--value={SECRET}")
    help_text = cli("secret", "set", "--help").stdout

    assert positional.returncode == 2 and option.returncode == 2
    assert "standard input" in positional.stderr
    assert "--value" not in help_text
    assert json.loads(cli("connection", "show", "acme", "--json").stdout)["secrets"]["registry_token"] is None
    assert all(SECRET not in output for output in cli.outputs)


def test_empty_stdin_is_refused(cli: Cli) -> None:
    cli("connection", "apply", "acme.toml")

    done = cli("secret", "set", "acme", "registry_token", stdin="")

    assert done.returncode == 2
    assert "standard input" in done.stderr


def test_audit_verify_passes_then_names_the_tampered_event(cli: Cli, env: RegsyncEnv) -> None:
    cli("connection", "apply", "acme.toml")
    cli("secret", "set", "acme", "registry_token", stdin=SECRET)
    intact = cli("audit", "verify")

    _sql(
        env.database_url,
        "UPDATE audit_events SET actor = 'mallory' WHERE id = (SELECT min(id) FROM audit_events)",
    )
    broken = cli("audit", "verify")

    assert intact.returncode == 0, intact.stderr
    assert "2 event(s)" in intact.stdout
    assert broken.returncode == 1
    first_id = json.loads(cli("audit", "list", "--json").stdout)[0]["id"]
    assert f"event {first_id}" in broken.stderr


def test_help_shows_the_environment_variables(cli: Cli) -> None:
    assert "REGSYNC_LOG_LEVEL" in cli("--help").stdout
    assert "REGSYNC_ACTOR" in cli("connection", "apply", "--help").stdout


def test_keygen_prints_a_usable_key(cli: Cli) -> None:
    done = cli("secret", "keygen", actor=None)

    assert done.returncode == 0
    assert len(done.stdout.strip()) == 44
