"""Anchor the audit chain's head off the ledger, so deleting the newest events is detectable.

A signed head record (``audit_anchor``: newest event id and hash, HMAC-SHA256 under a key derived from the
secrets' key ring) is written periodically to the SIEM feed and to the log. ``audit verify --anchor FILE`` reads
such records (or the SIEM's ``audit_event`` lines) and checks that the ledger still holds the newest event they
name, with the same hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import get_settings
from worker.errors import SecretKeyError
from worker.ledger.audit import canonical_json
from worker.ledger.models import AuditEvent

ANCHOR_TYPE = "audit_anchor"
_CONTEXT = b"regsync audit anchor v1"


@dataclass(frozen=True, slots=True)
class Head:
    """The newest audit event an anchor vouches for."""

    id: int
    hash: str


def _keys() -> list[bytes]:
    keys = get_settings().secret_keys()
    if not keys:
        raise SecretKeyError("REGSYNC_SECRET_KEY is not set, so audit anchors cannot be signed or checked")
    return [hmac.new(key.encode("ascii"), _CONTEXT, hashlib.sha256).digest() for key in keys]


def _signature(key: bytes, body: dict[str, Any]) -> str:
    return hmac.new(key, canonical_json(body).encode("utf-8"), hashlib.sha256).hexdigest()


def head_record(session: Session, now: dt.datetime) -> dict[str, Any] | None:
    """The signed head record of the chain as it stands (None while the log is empty)."""
    newest = session.execute(
        select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
    ).first()
    if newest is None:
        return None
    body = {"type": ANCHOR_TYPE, "head_id": newest.id, "head_hash": newest.hash, "at": now.isoformat()}
    return {**body, "signature": _signature(_keys()[0], body)}


def _signed(record: dict[str, Any]) -> bool:
    body = {k: v for k, v in record.items() if k != "signature"}
    given = str(record.get("signature", ""))
    return any(hmac.compare_digest(_signature(key, body), given) for key in _keys())


def read_heads(lines: Iterable[str]) -> list[Head]:
    """The heads named by an anchor file or a SIEM export (JSON lines); other lines are ignored.

    Raises:
        SecretKeyError: An ``audit_anchor`` line's signature matches none of the configured keys.
    """
    heads: list[Head] = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        if record.get("type") == ANCHOR_TYPE:
            if not _signed(record):
                raise SecretKeyError(f"anchor for event {record.get('head_id')} has a wrong signature")
            heads.append(Head(int(record["head_id"]), str(record["head_hash"])))
        elif record.get("type") == "audit_event":
            heads.append(Head(int(record["id"]), str(record["hash"])))
    return heads


def check_heads(session: Session, heads: list[Head]) -> str | None:
    """Why the ledger contradicts the newest anchored head, or None when it still holds it unchanged."""
    if not heads:
        return "the anchor file names no audit event (no audit_anchor or audit_event line)"
    newest = max(heads, key=lambda head: head.id)
    stored = session.scalar(select(AuditEvent.hash).where(AuditEvent.id == newest.id))
    if stored is None:
        return f"event {newest.id}, anchored off the ledger, is missing: the newest events were deleted"
    if stored != newest.hash:
        return f"event {newest.id} does not have the anchored hash: the log was rewritten from there"
    return None
