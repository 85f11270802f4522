"""The shared fixtures give each test its own PostgreSQL database, Redis DB and environment."""

from __future__ import annotations

import os

import psycopg
import redis

from config.settings import get_settings
from tests.conftest import RegsyncEnv


def test_pg_url_is_a_fresh_empty_database(pg_url: str) -> None:
    with psycopg.connect(pg_url.replace("+psycopg", "")) as connection:
        name = connection.execute("SELECT current_database()").fetchone()
        tables = connection.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()

    assert name is not None and name[0].startswith("regsync_t_")
    assert tables == (0,)


def test_redis_url_is_a_private_flushed_database(redis_url: str) -> None:
    index = int(redis_url.rsplit("/", 1)[1])
    client = redis.Redis.from_url(redis_url)
    try:
        assert 1 <= index <= 15
        assert client.dbsize() == 0
        client.set("regsync:test", "1")
    finally:
        client.close()


def test_env_points_settings_at_the_migrated_ledger(env: RegsyncEnv) -> None:
    settings = get_settings()

    assert settings.database_url == env.database_url == os.environ["REGSYNC_DATABASE_URL"]
    assert settings.secret_keys() == [env.secret_key]
    assert settings.actor is None
