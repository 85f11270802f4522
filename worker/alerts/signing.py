"""Webhook signatures: HMAC-SHA256 over ``"<unix timestamp>." + body``, sent in two headers.

A receiver recomputes the HMAC with the shared ``webhook_signing_key``, compares in constant time, and refuses
timestamps too far from its clock (replays).
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Regsync-Timestamp"
SIGNATURE_HEADER = "X-Regsync-Signature"
EVENT_HEADER = "X-Regsync-Event-Id"
#: How far a signed timestamp may be from the receiver's clock, seconds.
DEFAULT_TOLERANCE_S = 300


def sign(key: str, timestamp: int, body: bytes) -> str:
    """The signature header value: ``sha256=<hex>``."""
    digest = hmac.new(key.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(
    key: str,
    timestamp: str,
    body: bytes,
    signature: str,
    now: float,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> bool:
    """True when ``signature`` is ours for ``timestamp`` + ``body`` and the timestamp is recent."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs(now - stamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(key, stamp, body), signature)
