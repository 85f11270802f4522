"""Opaque cursors: the last id of the previous page as 8 bytes, base64url-encoded (11 characters).

Every string that matches ``PATTERN`` is a valid cursor (a position in the list), so a cursor can only be
rejected by its shape (422), never by its content; clients pass ``next_cursor`` back unread.
"""

from __future__ import annotations

import base64

#: 11 base64url characters whose last one carries no stray bits: exactly the encodings of 8 bytes.
PATTERN = r"^[A-Za-z0-9_-]{10}[AEIMQUYcgkosw048]$"
_MAX_ID = 2**63 - 1


def encode(last_id: int) -> str:
    return base64.urlsafe_b64encode(last_id.to_bytes(8, "big")).decode("ascii").rstrip("=")


def decode(cursor: str | None) -> int | None:
    """The last id of the previous page, or None for the first page (``cursor`` matched ``PATTERN``)."""
    if cursor is None:
        return None
    value = int.from_bytes(base64.urlsafe_b64decode(cursor + "="), "big")
    return min(value, _MAX_ID)
