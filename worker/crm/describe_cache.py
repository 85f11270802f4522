"""Describes shared by the Salesforce clients of one process, so that checking values before a write costs
one describe per session, not one per chunk.

Entries are keyed by the access token: a new login (every ``TOKEN_REUSE_S`` at the latest, or after Salesforce
refused a token) describes the object again, so a changed field is seen within minutes. Memory only.
"""

from __future__ import annotations

import threading

from worker.crm.port import FieldInfo
from worker.infra import process_state

#: Entries kept at most; the oldest go first (a token lives ``TOKEN_REUSE_S``, so few entries are alive).
MAX_ENTRIES = 256
Key = tuple[str, str, str]  # (instance URL, access token, object)
Fields = dict[str, FieldInfo]


class DescribeCache:
    """The last describe of each (instance, token, object); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Key, Fields] = {}

    def get(self, key: Key) -> Fields | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: Key, fields: Fields) -> None:
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = fields
            while len(self._entries) > MAX_ENTRIES:
                self._entries.pop(next(iter(self._entries)))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


DESCRIBES = DescribeCache()
process_state.register(__name__, "DESCRIBES", DESCRIBES.clear)
