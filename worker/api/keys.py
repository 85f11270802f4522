"""API keys: create (shown once), authenticate, revoke, list; every change audited.

A key is ``rsk_`` + 43 URL-safe characters (256 random bits). Only its sha256 is stored: with that much
entropy a plain hash cannot be brute-forced, and a lookup by hash needs no per-key salt.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from worker.api.models import ApiKey, ApiKeyConnection
from worker.errors import ApiKeyNotFound, ConfigurationError, ConnectionNotFound
from worker.ledger.audit import append_event
from worker.ledger.db import updated_one
from worker.ledger.models import Connection, utcnow
from worker.roles import Role

KEY_PREFIX = "rsk_"
_KEY_BYTES = 32
#: last_used_at is written at most this often per key, so reads don't turn into a write per request.
LAST_USED_RESOLUTION = dt.timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key's id, role and the connections it may see (by id and by name)."""

    key_id: int
    role: Role
    connections: dict[int, str]

    def sees(self, connection_id: int) -> bool:
        return connection_id in self.connections

    def connection_id(self, name: str) -> int | None:
        """The id of ``name`` if this key may see it, else None (callers answer 404 either way)."""
        return next((cid for cid, cname in self.connections.items() if cname == name), None)

    @property
    def actor(self) -> str:
        """How this key appears in the audit trail and in ``triggered_by``."""
        return f"apikey:{self.key_id}"


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key: ``secret`` is the only copy of the key and is never stored."""

    id: int
    prefix: str
    secret: str
    role: Role
    connections: list[str]


def hash_key(raw: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _connection_ids(session: Session, names: list[str]) -> dict[str, int]:
    if not names:
        raise ConfigurationError("an API key needs at least one --connection")
    query = select(Connection.name, Connection.id).where(Connection.name.in_(names))
    found: dict[str, int] = {name: cid for name, cid in session.execute(query)}
    missing = sorted(set(names) - set(found))
    if missing:
        raise ConnectionNotFound(
            f"no connection named {', '.join(missing)}; list them with `regsync connection list`"
        )
    return found


def create_key(
    session: Session, *, connections: list[str], role: Role, actor: str, label: str | None = None
) -> CreatedKey:
    """Create a key scoped to ``connections`` with ``role``, audited; the returned secret is shown once.

    Raises:
        ConnectionNotFound: A named connection does not exist.
        ConfigurationError: No connection was named.
    """
    ids = _connection_ids(session, sorted(set(connections)))
    raw = KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)
    key = ApiKey(
        prefix=raw[: len(KEY_PREFIX) + 8],
        key_hash=hash_key(raw),
        role=role.value,
        label=label,
        created_by=actor,
    )
    session.add(key)
    session.flush()
    session.add_all(ApiKeyConnection(api_key_id=key.id, connection_id=cid) for cid in ids.values())
    after = {"role": role.value, "connections": sorted(ids), "prefix": key.prefix, "label": label}
    append_event(session, actor=actor, action="apikey.create", target=f"apikey:{key.id}", after=after)
    return CreatedKey(key.id, key.prefix, raw, role, sorted(ids))


def revoke_key(session: Session, key_id: int, actor: str) -> None:
    """Revoke a key at once (its next request answers 401), audited.

    Raises:
        ApiKeyNotFound: No such key, or it is revoked already.
    """
    now = utcnow()
    done = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now, revoked_by=actor)
    )
    if not updated_one(done):
        raise ApiKeyNotFound(f"no active API key with id {key_id}; list keys with `regsync apikey list`")
    append_event(
        session, actor=actor, action="apikey.revoke", target=f"apikey:{key_id}", after={"revoked": True}
    )


def list_keys(session: Session, *, include_revoked: bool = False) -> list[dict[str, Any]]:
    """Every key as a JSON-able dict (prefix only, never the key or its hash), oldest first."""
    query = select(ApiKey).order_by(ApiKey.id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    keys = list(session.scalars(query))
    scopes = _scopes(session, [k.id for k in keys])
    return [_key_view(key, sorted(scopes.get(key.id, {}).values())) for key in keys]


def _key_view(key: ApiKey, connections: list[str]) -> dict[str, Any]:
    def iso(value: dt.datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": key.id,
        "prefix": key.prefix,
        "role": key.role,
        "connections": connections,
        "label": key.label,
        "created_by": key.created_by,
        "created_at": iso(key.created_at),
        "last_used_at": iso(key.last_used_at),
        "revoked_at": iso(key.revoked_at),
    }


def _scopes(session: Session, key_ids: list[int]) -> dict[int, dict[int, str]]:
    rows = session.execute(
        select(ApiKeyConnection.api_key_id, Connection.id, Connection.name)
        .join(Connection, Connection.id == ApiKeyConnection.connection_id)
        .where(ApiKeyConnection.api_key_id.in_(key_ids))
    )
    scopes: dict[int, dict[int, str]] = {}
    for key_id, connection_id, name in rows:
        scopes.setdefault(key_id, {})[connection_id] = name
    return scopes


def authenticate(session: Session, raw: str, now: dt.datetime | None = None) -> Principal | None:
    """The principal of an active key, or None for an unknown, malformed or revoked one; notes the use."""
    if not raw.startswith(KEY_PREFIX) or len(raw) > 128:
        return None
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(raw), ApiKey.revoked_at.is_(None)))
    if key is None:
        return None
    _touch(session, key.id, now or utcnow())
    return Principal(key.id, Role(key.role), _scopes(session, [key.id]).get(key.id, {}))


def _touch(session: Session, key_id: int, now: dt.datetime) -> None:
    stale = now - LAST_USED_RESOLUTION
    session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < stale))
        .values(last_used_at=now)
    )


def principal_of(session: Session, key_id: int) -> Principal | None:
    """The principal of the active key ``key_id`` (a console session holds the id, never the key), or None once
    the key is revoked."""
    key = session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)))
    if key is None:
        return None
    return Principal(key.id, Role(key.role), _scopes(session, [key.id]).get(key.id, {}))
