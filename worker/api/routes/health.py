"""GET /v1/health: ledger, Redis, beat and worker heartbeats; 200 when all are fine, else 503.

No API key needed (load balancers and monitors call it) and nothing tenant-specific in it: counts and ages
only, no connection names, no host names, no URLs.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import redis
from fastapi import APIRouter, Response
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from config.settings import get_settings
from worker import heartbeat
from worker.api.schemas import HealthOut
from worker.ledger.db import missing_table, session_scope
from worker.ledger.migrate import heads, known_revisions

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@functools.cache
def _schema() -> tuple[frozenset[str], frozenset[str]]:
    return frozenset(heads()), known_revisions()


def _ledger() -> dict[str, Any]:
    """The ledger answers and is not behind this release's schema: a web process started before `release`
    finished migrating, or after a deploy that skipped it, would fail its queries. A ledger *ahead* of us (a
    newer release migrated it while this one still serves, mid rolling deploy) stays healthy: migrations are
    additive, and taking every old instance out of the load balancer at once would be an outage."""
    try:
        with session_scope() as session:
            version = session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError as exc:
        if isinstance(exc, DBAPIError) and missing_table(exc):
            return {"ok": False, "detail": "the ledger is not migrated; run `alembic upgrade head`"}
        log.warning("health: ledger unreachable: %s", type(exc).__name__)
        return {"ok": False, "detail": "the ledger does not answer"}
    heads_, known = _schema()
    if version in heads_:
        return {"ok": True}
    if version is None or version in known:
        log.warning("health: ledger at revision %s, this release needs %s", version, sorted(heads_))
        return {
            "ok": False,
            "detail": "the ledger is not at this release's schema; run `alembic upgrade head`",
        }
    return {"ok": True, "detail": "the ledger is at a newer schema than this release"}


def _processes(url: str, role: str) -> dict[str, Any]:
    try:
        seen = heartbeat.alive(url, role)
    except (redis.RedisError, OSError):
        return {"ok": False, "alive": 0, "newest_age_s": None}
    newest = min((s.age_s for s in seen), default=None)
    return {"ok": bool(seen), "alive": len(seen), "newest_age_s": newest}


def _redis(url: str) -> dict[str, Any]:
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0) as client:
            client.ping()
    except (redis.RedisError, OSError) as exc:
        log.warning("health: Redis unreachable: %s", type(exc).__name__)
        return {"ok": False, "detail": "Redis does not answer"}
    return {"ok": True}


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "Something is down; the body says what."}},
    summary="Is regsync up: ledger, Redis, beat and workers",
)
def health(response: Response) -> dict[str, Any]:
    url = get_settings().redis_url
    body: dict[str, Any] = {
        "ledger": _ledger(),
        "redis": _redis(url),
        "beat": _processes(url, "beat"),
        "workers": _processes(url, "worker"),
    }
    ok = all(part["ok"] for part in body.values())
    body["status"] = "ok" if ok else "degraded"
    response.status_code = 200 if ok else 503
    return body
