"""A ledger that is missing, unreachable or not migrated gets a message that says what to do, not a traceback.

The CLI and the HTTP API both turn the database driver's error into a LedgerError: the CLI prints one line and
exits 1, the API answers 503 in its JSON error shape. Neither shows the SQL (it can hold record Ids) or the
password of the database URL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from unittest.mock import ANY

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from config.settings import reset_settings
from worker.api.app import create_app
from worker.api.throttle import MemoryThrottle
from worker.cli.main import app
from worker.infra import heartbeat
from worker.ledger.db import reset_engines, session_scope
from worker.ledger.migrate import upgrade

PASSWORD = "pg-pass-7f3a9c"  # must never be shown


@pytest.fixture
def ledger_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    def point(url: str) -> None:
        monkeypatch.setenv("REGSYNC_DATABASE_URL", url)
        reset_settings()
        reset_engines()

    yield point
    reset_engines()
    reset_settings()


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "300"})
    return result.exit_code, result.output


@pytest.mark.parametrize("command", [("runs", "list"), ("runs", "show", "1"), ("alerts", "list")])
def test_a_sqlite_ledger_without_tables_says_to_migrate(ledger_at, tmp_path: Path, command) -> None:  # type: ignore[no-untyped-def]
    ledger_at(f"sqlite:///{tmp_path / 'empty.db'}")
    code, output = cli(*command)
    assert code == 1
    assert "error: the ledger's tables are missing" in output and "alembic upgrade head" in output
    assert "Traceback" not in output and "SELECT" not in output


def test_a_postgresql_ledger_not_migrated_names_the_table(ledger_at, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    ledger_at(pg_url)
    code, output = cli("runs", "list")
    assert code == 1 and 'relation "runs" does not exist' in output and "alembic upgrade head" in output


def test_an_unreachable_ledger_says_where_to_look_and_hides_the_password(ledger_at) -> None:  # type: ignore[no-untyped-def]
    ledger_at(f"postgresql+psycopg://regsync:{PASSWORD}@127.0.0.1:1/ledger?connect_timeout=3")
    code, output = cli("runs", "list")
    assert code == 1
    assert "cannot use the ledger database" in output and "REGSYNC_DATABASE_URL" in output
    assert PASSWORD not in output and "Traceback" not in output


def test_the_api_answers_503_in_its_error_shape(ledger_at, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ledger_at(f"sqlite:///{tmp_path / 'empty.db'}")
    api = create_app(throttle=MemoryThrottle(100))
    with TestClient(api, raise_server_exceptions=False) as client:
        response = client.get("/v1/runs/1", headers={"Authorization": "Bearer rsk_" + "x" * 43})
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "LEDGER" and "try again" in body["detail"]
    assert "Traceback" not in response.text and "SELECT" not in response.text


@pytest.mark.parametrize(
    ("revision", "detail"),
    [(None, "the ledger is not migrated"), ("0005", "the ledger is not at this release's schema")],
    ids=["never-migrated", "one-behind"],
)
def test_health_is_503_until_the_ledger_is_at_this_releases_schema(  # type: ignore[no-untyped-def]
    ledger_at, monkeypatch: pytest.MonkeyPatch, pg_url: str, redis_url: str, *, revision, detail: str
) -> None:
    monkeypatch.setenv("REGSYNC_REDIS_URL", redis_url)
    heartbeat.beat_once(redis_url, "beat", "beat-1")
    heartbeat.beat_once(redis_url, "worker", "worker-1")
    ledger_at(pg_url)
    if revision:
        upgrade(pg_url, revision)
    with TestClient(create_app(throttle=MemoryThrottle(100)), raise_server_exceptions=False) as client:
        before = client.get("/v1/health")
        upgrade(pg_url)
        after = client.get("/v1/health")
    assert before.status_code == 503 and before.json()["ledger"] == {"ok": False, "detail": ANY}
    assert before.json()["ledger"]["detail"].startswith(detail) and "alembic upgrade head" in before.text
    assert after.status_code == 200 and after.json()["ledger"]["ok"] is True


@pytest.mark.parametrize("task", ["tick", "sweep", "alerts_evaluate"])
def test_beat_tasks_on_an_unmigrated_ledger_skip_with_one_clear_line(  # type: ignore[no-untyped-def]
    ledger_at, tmp_path: Path, caplog: pytest.LogCaptureFixture, task: str
) -> None:
    from tasks import jobs

    ledger_at(f"sqlite:///{tmp_path / 'empty.db'}")
    with caplog.at_level(logging.ERROR, logger="tasks.jobs"):
        result = getattr(jobs, task).run()
    assert result == {"skipped_unmigrated": 1}
    (record,) = [r for r in caplog.records if r.name == "tasks.jobs"]
    assert "alembic upgrade head" in record.getMessage() and record.exc_info is None


def test_health_stays_ok_when_a_newer_release_migrated_the_ledger(  # type: ignore[no-untyped-def]
    ledger_at, monkeypatch: pytest.MonkeyPatch, pg_url: str, redis_url: str
) -> None:
    """Mid rolling deploy: the old web processes must not all drop out of the load balancer at once."""
    monkeypatch.setenv("REGSYNC_REDIS_URL", redis_url)
    heartbeat.beat_once(redis_url, "beat", "beat-1")
    heartbeat.beat_once(redis_url, "worker", "worker-1")
    ledger_at(pg_url)
    upgrade(pg_url)
    with session_scope() as session:
        session.execute(text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))
    with TestClient(create_app(throttle=MemoryThrottle(100)), raise_server_exceptions=False) as client:
        answer = client.get("/v1/health")
    assert answer.status_code == 200
    assert answer.json()["ledger"] == {
        "ok": True,
        "detail": "the ledger is at a newer schema than this release",
    }


def test_a_database_error_that_is_a_bug_is_a_500_not_a_retry_later(ledger_at, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ledger_at(f"sqlite:///{tmp_path / 'empty.db'}")
    api = create_app(throttle=MemoryThrottle(100))

    def duplicate() -> None:
        raise IntegrityError("INSERT …", {}, Exception("UNIQUE constraint failed: connections.name"))

    api.add_api_route("/v1/boom", duplicate)
    with TestClient(api, raise_server_exceptions=False) as client:
        answer = client.get("/v1/boom")
    assert answer.status_code == 500 and "try again" not in answer.text and "UNIQUE" not in answer.text


@pytest.mark.parametrize(
    ("url", "says", "code"),
    [
        (
            "postgresql+psycopg://postgres@127.0.0.1:5432/regsync_no_such_db",
            "cannot use the ledger database",
            1,
        ),
        ("postgresql+psycopg://no_such_role@127.0.0.1:5432/test", "cannot use the ledger database", 1),
        ("postgresql+nodriver://u:pg-pass-7f3a9c@h/db", "REGSYNC_DATABASE_URL is not a database URL", 2),
    ],
    ids=["no-database", "no-role", "no-driver"],
)
def test_a_wrong_database_url_is_not_mistaken_for_a_missing_migration(  # type: ignore[no-untyped-def]
    ledger_at, url: str, says: str, code: int
) -> None:
    ledger_at(url)
    exit_code, output = cli("runs", "list")
    assert exit_code == code and says in output
    assert "alembic upgrade head" not in output and PASSWORD not in output and "Traceback" not in output
