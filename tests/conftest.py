"""Fixtures shared by every test tier: throwaway ledgers (SQLite and PostgreSQL), a Redis DB, the environment.

A service that is not running makes its tests skip locally and fail in CI (``CI=true``).
Run only one backend of a ``ledger_url`` test with ``@pytest.mark.parametrize("ledger_url", ["sqlite"],
indirect=True)``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
import redis
from cryptography.fernet import Fernet
from psycopg import sql

from worker.infra.process_state import reset_process_state
from worker.ledger.db import reset_engines
from worker.ledger.migrate import upgrade

PG_HOST = os.environ.get("REGSYNC_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("REGSYNC_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("REGSYNC_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("REGSYNC_TEST_PG_DB", "test")
REDIS_BASE = os.environ.get("REGSYNC_TEST_REDIS", "redis://127.0.0.1:6379")
# Test runs on one machine share Redis: each claims a DB index with a key in DB 0 (expires if a run dies).
REDIS_CLAIM_TTL_S = 1800
REDIS_TEST_DBS = range(1, 16)

_TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests under tests/integration and tests/e2e with their tier's marker."""
    for item in items:
        parts = Path(str(item.path)).parts
        for tier in _TIERS[1:]:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(autouse=True)
def _fresh_salesforce_tokens() -> None:
    """Each test logs in to its own sandbox org: no token cached by an earlier test (ports get reused)."""
    from worker.crm.auth import TOKENS

    TOKENS.clear()


def service_missing(message: str) -> NoReturn:
    """Skip the test, or fail it when running in CI, because a service it needs is unavailable."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: a missing service is a failure)")
    pytest.skip(message)


def _pg_admin() -> psycopg.Connection:
    try:
        return psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_ADMIN_DB, autocommit=True, connect_timeout=5
        )
    except psycopg.OperationalError as exc:
        service_missing(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} (database {PG_ADMIN_DB}): {exc}")


@contextmanager
def fresh_pg_database(prefix: str = "regsync_t") -> Iterator[str]:
    """A new, empty PostgreSQL database; dropped afterwards (FORCE ends leftover sessions)."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    with _pg_admin() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        reset_engines()
        with _pg_admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite ledger file in the test's temporary directory (not created yet)."""
    return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "pg"])
def ledger_url(request: pytest.FixtureRequest) -> str:
    """An empty ledger database, once on SQLite and once on PostgreSQL."""
    fixture = "pg_url" if request.param == "postgresql" else "sqlite_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def migrated_url(ledger_url: str) -> str:
    """``ledger_url`` migrated to the newest revision."""
    upgrade(ledger_url)
    return ledger_url


def _claim_redis_db(claims: redis.Redis, token: str) -> int:
    start = os.getpid() % len(REDIS_TEST_DBS)
    for offset in range(len(REDIS_TEST_DBS)):
        index = REDIS_TEST_DBS[(start + offset) % len(REDIS_TEST_DBS)]
        if claims.set(f"regsync:test-redis-db:{index}", token, nx=True, ex=REDIS_CLAIM_TTL_S):
            return index
    service_missing("every Redis DB index 1..15 is claimed by other test runs")


@contextmanager
def claimed_redis() -> Iterator[str]:
    """A Redis DB index (1..15) that no other test run is using, flushed before and after."""
    claims = redis.Redis.from_url(f"{REDIS_BASE}/0", socket_connect_timeout=3)
    try:
        claims.ping()
    except redis.RedisError as exc:
        service_missing(f"Redis is not reachable at {REDIS_BASE}: {exc}")
    token = f"{os.getpid()}:{secrets.token_hex(4)}"
    index = _claim_redis_db(claims, token)
    url = f"{REDIS_BASE}/{index}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
        key = f"regsync:test-redis-db:{index}"
        if claims.get(key) == token.encode():
            claims.delete(key)
        claims.close()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database of this test's own."""
    with claimed_redis() as url:
        yield url


@dataclass(frozen=True)
class RegsyncEnv:
    """What the ``env`` fixture set: subprocesses started by the test inherit it through os.environ."""

    database_url: str
    secret_key: str


@contextmanager
def clean_environment(patch: pytest.MonkeyPatch, **values: str) -> Iterator[None]:
    """A clean regsync environment: no REGSYNC_* variable (REGSYNC_TEST_* stay) but ``values``, and no process
    state cached from before (worker.infra.process_state); forgotten again afterwards."""
    for name in [
        name for name in os.environ if name.startswith("REGSYNC_") and not name.startswith("REGSYNC_TEST")
    ]:
        patch.delenv(name)
    for name, value in values.items():
        patch.setenv(name, value)
    reset_process_state()
    try:
        yield
    finally:
        reset_process_state()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No REGSYNC_* variable (REGSYNC_TEST_* stay) and fresh process state; set variables on the yielded patch,
    then call ``reset_process_state()`` if settings were read already."""
    with clean_environment(monkeypatch):
        yield monkeypatch


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, migrated_url: str) -> Iterator[RegsyncEnv]:
    """A clean regsync environment on a migrated ledger: only REGSYNC_DATABASE_URL and a fresh secret key."""
    key = Fernet.generate_key().decode("ascii")
    with clean_environment(monkeypatch, REGSYNC_DATABASE_URL=migrated_url, REGSYNC_SECRET_KEY=key):
        yield RegsyncEnv(database_url=migrated_url, secret_key=key)
