"""Hostile and mistaken input at the CLI: each is one line on stderr, exit 2, no traceback, and the ledger is
left exactly as it was (no audit event, no run)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.conftest import RegsyncEnv
from tests.e2e.test_admin_cli import CONNECTION_TOML, Cli
from worker.crm.ids import MAX_IDS, canonical_id
from worker.text_input import MAX_DB_ID

EVIL = "evil\x1b[31mRED\nfake line"
TOO_BIG = str(MAX_DB_ID + 1)


def _counts(url: str) -> tuple[int, int, int]:
    """Audit events, runs and connections in the ledger."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return tuple(
                connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("audit_events", "runs", "connections")
            )
    finally:
        engine.dispose()


@pytest.fixture
def cli(env: RegsyncEnv, tmp_path: Path) -> Cli:
    (tmp_path / "acme.toml").write_text(CONNECTION_TOML, encoding="utf-8")
    return Cli(tmp_path)


@pytest.fixture
def applied(cli: Cli, env: RegsyncEnv) -> tuple[int, int, int]:
    """The acme connection applied; the ledger's counts after that."""
    assert cli("connection", "apply", "acme.toml").returncode == 0
    return _counts(env.database_url)


def _refused(done: subprocess.CompletedProcess[str], *words: str) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert all(word in lines[0] for word in words), lines[0]
    return lines[0]


def test_non_utf8_connection_file_is_one_line_and_exit_2(cli: Cli, env: RegsyncEnv) -> None:
    (cli.cwd / "latin1.toml").write_bytes(CONNECTION_TOML.replace("acme", "acmé").encode("latin-1"))

    done = cli("connection", "apply", "latin1.toml")

    _refused(done, "latin1.toml is not UTF-8 text")
    assert _counts(env.database_url) == (0, 0, 0)


def test_non_utf8_ids_file_is_one_line_and_exit_2(
    cli: Cli, env: RegsyncEnv, applied: tuple[int, int, int]
) -> None:
    (cli.cwd / "ids.txt").write_bytes(b"001000000000001\n\xff\xfe\x00garbage\n")

    done = cli("backfill", "acme", "--ids-file", "ids.txt")

    _refused(done, "ids.txt is not UTF-8 text")
    assert _counts(env.database_url) == applied


def test_ids_file_over_the_api_cap_is_refused_with_the_cap(
    cli: Cli, env: RegsyncEnv, applied: tuple[int, int, int]
) -> None:
    lines = (canonical_id(f"001{n:012d}") for n in range(MAX_IDS + 1))
    (cli.cwd / "ids.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

    done = cli("backfill", "acme", "--ids-file", "ids.txt")

    _refused(done, "more than 100,000 record Ids")
    assert _counts(env.database_url) == applied


def test_ids_file_bad_lines_are_named_by_line_number(
    cli: Cli, env: RegsyncEnv, applied: tuple[int, int, int]
) -> None:
    body = "# accounts\n001000000000001\nnot-an-id\n\n001000000000002\n0010000000000\n"
    (cli.cwd / "ids.txt").write_text(body, encoding="utf-8")

    done = cli("backfill", "acme", "--ids-file", "ids.txt")

    _refused(done, "line 3: 'not-an-id'", "line 6: '0010000000000'")
    assert _counts(env.database_url) == applied


@pytest.mark.parametrize("where", ["flag", "env"])
def test_control_characters_in_the_actor_are_refused(cli: Cli, env: RegsyncEnv, where: str) -> None:
    done = (
        cli("connection", "apply", "acme.toml", "--actor", EVIL)
        if where == "flag"
        else cli("connection", "apply", "acme.toml", actor=EVIL)
    )

    line = _refused(done, "actor", "control characters", "\\x1b", "\\n")
    assert "\x1b" not in line
    assert _counts(env.database_url) == (0, 0, 0)


def test_control_characters_in_a_run_actor_are_refused(
    cli: Cli, env: RegsyncEnv, applied: tuple[int, int, int]
) -> None:
    _refused(cli("run", "acme", "--actor", EVIL), "control characters")
    assert _counts(env.database_url) == applied


def test_control_characters_in_a_connection_name_are_escaped_in_the_error(cli: Cli, env: RegsyncEnv) -> None:
    done = cli("connection", "show", EVIL)

    _refused(done, "\\x1b[31mRED\\nfake line")
    assert "\x1b" not in done.stderr


def test_audit_list_escapes_control_characters_stored_before(
    cli: Cli, env: RegsyncEnv, applied: tuple[int, int, int]
) -> None:
    engine = create_engine(env.database_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE audit_events SET actor = :actor"), {"actor": EVIL})
    finally:
        engine.dispose()

    done = cli("audit", "list")

    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    assert done.stdout.strip().splitlines() == [
        line for line in done.stdout.strip().splitlines() if "\\x1b[31mRED\\nfake line" in line
    ]


@pytest.mark.parametrize("key", ["token_url", "base_url"])
def test_userinfo_in_a_configured_url_is_refused_without_showing_it(
    cli: Cli, env: RegsyncEnv, key: str
) -> None:
    host = {"token_url": '"https://acme.my', "base_url": '"https://api.proff'}[key]
    toml = CONNECTION_TOML.replace(host, host.replace("https://", "https://user:hunter2@"))
    (cli.cwd / "creds.toml").write_text(toml, encoding="utf-8")

    done = cli("connection", "apply", "creds.toml")

    _refused(done, "user name or password")
    assert "hunter2" not in done.stdout + done.stderr
    assert _counts(env.database_url) == (0, 0, 0)


def test_webhook_url_with_userinfo_is_refused(cli: Cli, env: RegsyncEnv) -> None:
    extra = """
[alerts.channels.ops]
type = "webhook"
url = "https://me:hunter2@hooks.example.com/x"
"""
    (cli.cwd / "hook.toml").write_text(CONNECTION_TOML + "\n" + extra, encoding="utf-8")

    done = cli("connection", "apply", "hook.toml")

    assert "hunter2" not in done.stdout + done.stderr
    _refused(done, "user name or password")
    assert _counts(env.database_url) == (0, 0, 0)


def test_unknown_run_exits_2_and_says_no_run(
    cli: Cli, env: RegsyncEnv, applied: tuple[int, int, int]
) -> None:
    _refused(cli("runs", "show", "99999"), "no run 99999")
    _refused(cli("runs", "failures", "99999"), "no run 99999")
    assert _counts(env.database_url) == applied


@pytest.mark.parametrize(
    "command",
    [
        ("runs", "show", TOO_BIG),
        ("runs", "failures", TOO_BIG),
        ("runs", "cancel", TOO_BIG),
        ("runs", "resume", TOO_BIG),
        ("alerts", "show", TOO_BIG),
        ("alerts", "ack", TOO_BIG),
        ("backfill", "acme", "--only-failed", TOO_BIG),
        ("runs", "show", "0"),
        ("runs", "show", "99999999999999999999"),
    ],
)
def test_an_id_out_of_range_is_a_usage_error(
    cli: Cli, env: RegsyncEnv, applied: tuple[int, int, int], command: tuple[str, ...]
) -> None:
    line = _refused(cli(*command), "out of range")
    assert "bigint" not in line
    assert _counts(env.database_url) == applied


def test_a_where_over_the_limit_is_refused_with_the_limit(
    cli: Cli, env: RegsyncEnv, applied: tuple[int, int, int]
) -> None:
    done = cli("backfill", "acme", "--where", "Name", "=", "x" * 5_000)

    _refused(done, "the limit is 4,000")
    assert _counts(env.database_url) == applied


def test_control_characters_in_a_where_value_are_refused(
    cli: Cli, env: RegsyncEnv, applied: tuple[int, int, int]
) -> None:
    done = cli("backfill", "acme", "--where", "Name", "=", EVIL)

    _refused(done, "--where", "control characters")
    assert _counts(env.database_url) == applied
