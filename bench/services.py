"""Throwaway PostgreSQL databases, a claimed Redis DB index, and the REGSYNC_* environment of a benchmark.

Databases are created per benchmark and dropped afterwards; Redis DB indexes are claimed with the same key the
test suite uses (``regsync:test-redis-db:N`` in DB 0), so a benchmark and a test run never share one.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import redis
from psycopg import sql

REDIS_CLAIM_TTL_S = 3 * 3600
REDIS_DBS = range(1, 16)


@dataclass(frozen=True, slots=True)
class Services:
    """Where PostgreSQL (admin database) and Redis are; from REGSYNC_BENCH_PG_DSN / REGSYNC_BENCH_REDIS."""

    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    pg_user: str = "postgres"
    pg_admin_db: str = "test"
    redis_base: str = "redis://127.0.0.1:6379"

    @classmethod
    def from_env(cls) -> Services:
        return cls(
            pg_host=os.environ.get("REGSYNC_TEST_PG_HOST", "127.0.0.1"),
            pg_port=int(os.environ.get("REGSYNC_TEST_PG_PORT", "5432")),
            pg_user=os.environ.get("REGSYNC_TEST_PG_USER", "postgres"),
            pg_admin_db=os.environ.get("REGSYNC_TEST_PG_DB", "test"),
            redis_base=os.environ.get("REGSYNC_TEST_REDIS", "redis://127.0.0.1:6379"),
        )

    def dsn(self, database: str | None = None) -> str:
        """A libpq DSN (psycopg) for ``database`` (the admin database by default)."""
        return f"postgresql://{self.pg_user}@{self.pg_host}:{self.pg_port}/{database or self.pg_admin_db}"

    def sqlalchemy_url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.pg_user}@{self.pg_host}:{self.pg_port}/{database}"

    @contextmanager
    def database(self, purpose: str) -> Iterator[str]:
        """A new, empty database for one benchmark (SQLAlchemy URL), dropped afterwards."""
        name = f"regsync_bench_{purpose}_{secrets.token_hex(4)}"
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield self.sqlalchemy_url(name)
        finally:
            from worker.ledger.db import reset_engines

            reset_engines()
            with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=5) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    @contextmanager
    def redis_db(self) -> Iterator[str]:
        """A Redis DB index nobody else (test run or benchmark) holds, flushed before and after."""
        claims = redis.Redis.from_url(f"{self.redis_base}/0", socket_connect_timeout=3)
        token = f"bench:{os.getpid()}:{secrets.token_hex(4)}"
        index = next(
            (
                i
                for i in REDIS_DBS
                if claims.set(f"regsync:test-redis-db:{i}", token, nx=True, ex=REDIS_CLAIM_TTL_S)
            ),
            None,
        )
        if index is None:
            raise RuntimeError(
                "every Redis DB index 1..15 is claimed; wait for the other test runs to finish"
            )
        url = f"{self.redis_base}/{index}"
        client = redis.Redis.from_url(url)
        client.flushdb()
        try:
            yield url
        finally:
            client.flushdb()
            client.close()
            if claims.get(f"regsync:test-redis-db:{index}") == token.encode():
                claims.delete(f"regsync:test-redis-db:{index}")
            claims.close()


def reset_process_caches() -> None:
    """Settings, engines and the Celery app are cached per process; drop them after the environment changed."""
    from config.celery import reset_app
    from config.settings import reset_settings
    from worker.ledger.db import reset_engines

    reset_settings()
    reset_engines()
    reset_app()


@contextmanager
def environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Set ``variables`` in this process (and so in the processes it starts) for the block, then restore."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    reset_process_caches()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_process_caches()
