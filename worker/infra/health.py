"""Is regsync up: the ledger, Redis, beat's and the workers' heartbeats. ``/v1/health`` and ``regsync health``
both answer from :func:`check`.

Counts and ages only: no connection names, no host names, no URLs (load balancers and monitors read it).
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import redis
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from config.settings import get_settings
from worker.errors import LedgerError, LedgerNotMigrated
from worker.infra import heartbeat, process_state
from worker.ledger.db import session_scope
from worker.ledger.migrate import heads, known_revisions

log = logging.getLogger(__name__)


@functools.cache
def _schema() -> tuple[frozenset[str], frozenset[str]]:
    return frozenset(heads()), known_revisions()


process_state.register(__name__, "_schema", _schema.cache_clear)


def _ledger_version() -> tuple[str | None, dict[str, Any] | None]:
    """The ledger's revision, or a failed check when it cannot be read."""
    try:
        with session_scope() as session:
            return session.execute(text("SELECT version_num FROM alembic_version")).scalar(), None
    except (LedgerError, SQLAlchemyError) as exc:
        if isinstance(exc, LedgerNotMigrated):
            return None, {"ok": False, "detail": "the ledger is not migrated; run `alembic upgrade head`"}
        log.warning("health: ledger unreachable: %s", type(exc).__name__)
        return None, {"ok": False, "detail": "the ledger does not answer"}


def ledger() -> dict[str, Any]:
    """The ledger answers and is not behind this release's schema: a web process started before `release`
    finished migrating, or after a deploy that skipped it, would fail its queries. A ledger *ahead* of us (a
    newer release migrated it while this one still serves, mid rolling deploy) stays healthy: migrations are
    additive, and taking every old instance out of the load balancer at once would be an outage."""
    version, failed = _ledger_version()
    if failed:
        return failed
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


def redis_ok(url: str) -> dict[str, Any]:
    """Redis answers a PING."""
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0) as client:
            client.ping()
    except (redis.RedisError, OSError) as exc:
        log.warning("health: Redis unreachable: %s", type(exc).__name__)
        return {"ok": False, "detail": "Redis does not answer"}
    return {"ok": True}


def processes(seen: list[heartbeat.Seen], grace_s: float) -> dict[str, Any]:
    """A role's part of the answer: ok when one of ``seen`` beat within ``grace_s``; the newest heartbeat's age.

    ``newest_age_s`` counts processes that died too (within ``heartbeat.KEEP_S``): how long beat has been silent.
    """
    alive = [s for s in seen if s.age_s <= grace_s]
    newest = min((s.age_s for s in seen), default=None)
    return {"ok": bool(alive), "alive": len(alive), "newest_age_s": newest}


def heard_from(url: str, now: float) -> dict[str, list[heartbeat.Seen]] | None:
    """Every beat and worker process heard from within ``heartbeat.KEEP_S``; None when Redis cannot be read."""
    try:
        return {role: heartbeat.last_seen(url, role, now) for role in heartbeat.ROLES}
    except (redis.RedisError, OSError):
        return None


def check(now: float | None = None) -> dict[str, Any]:
    """The health answer: ledger, redis, beat, workers (each with ``ok``) and ``status`` ok / degraded."""
    settings = get_settings()
    seen = heard_from(settings.redis_url, now if now is not None else time.time()) or {}
    body: dict[str, Any] = {
        "ledger": ledger(),
        "redis": redis_ok(settings.redis_url),
        "beat": processes(seen.get("beat", []), settings.beat_grace_s),
        "workers": processes(seen.get("worker", []), heartbeat.WORKER_GRACE_S),
    }
    body["status"] = "ok" if all(part["ok"] for part in body.values()) else "degraded"
    return body
