"""Where the budget's numbers live: regsync's own calls per connection per UTC day, and the last usage reading.

Redis in a cluster (every worker adds to one counter), this process in the embedded demo. Keys are named by
the connection's id and creation time (``row_tag``), so ledgers that share a Redis never mix their counts.
"""

from __future__ import annotations

import threading
from typing import Protocol

import redis

from worker.budget.guard import ApiReading
from worker.infra import process_state
from worker.infra.shared_state import redis_errors

#: Seconds a day's counter is kept (the day itself plus a margin for time zones and late readers).
DAY_COUNTER_TTL_S = 3 * 86_400
READING_TTL_S = 7 * 86_400


class BudgetStore(Protocol):
    def add_calls(self, connection_tag: str, day: str, calls: int) -> int:
        """Add ``calls`` to the day's counter; returns the new total."""
        ...

    def own_used(self, connection_tag: str, day: str) -> int: ...

    def save_reading(self, connection_tag: str, reading: ApiReading) -> None: ...

    def reading(self, connection_tag: str) -> ApiReading | None: ...

    def forget_reading(self, connection_tag: str) -> None:
        """Drop the reading so that the next chunk measures again (an admin resumed a paused run)."""
        ...


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _prefix(connection_tag: str) -> str:
    return f"regsync:budget:{{{connection_tag}}}"


class RedisBudgetStore:
    """The budget's numbers in Redis, shared by every worker process."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def add_calls(self, connection_tag: str, day: str, calls: int) -> int:
        key = f"{_prefix(connection_tag)}:used:{day}"
        with redis_errors("counting Salesforce API calls"):
            pipe = self._redis.pipeline()
            pipe.incrby(key, calls)
            pipe.expire(key, DAY_COUNTER_TTL_S)
            total, _ = pipe.execute()
        return int(total)

    def own_used(self, connection_tag: str, day: str) -> int:
        with redis_errors("reading the Salesforce API budget"):
            value = self._redis.get(f"{_prefix(connection_tag)}:used:{day}")
        return int(value or 0)

    def save_reading(self, connection_tag: str, reading: ApiReading) -> None:
        key = f"{_prefix(connection_tag)}:reading"
        with redis_errors("saving the Salesforce API usage"):
            pipe = self._redis.pipeline()
            pipe.hset(
                key, mapping={"used": reading.used, "limit": reading.limit, "seen_at": repr(reading.seen_at)}
            )
            pipe.expire(key, READING_TTL_S)
            pipe.execute()

    def reading(self, connection_tag: str) -> ApiReading | None:
        with redis_errors("reading the Salesforce API usage"):
            raw = self._redis.hgetall(f"{_prefix(connection_tag)}:reading")
        if not raw:
            return None
        values = {_text(key): _text(value) for key, value in raw.items()}
        return ApiReading(int(values["used"]), int(values["limit"]), float(values["seen_at"]))

    def forget_reading(self, connection_tag: str) -> None:
        with redis_errors("resetting the Salesforce API usage"):
            self._redis.delete(f"{_prefix(connection_tag)}:reading")


class LocalBudgetStore:
    """The budget's numbers in this process (embedded demo: one process does all the work)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used: dict[tuple[str, str], int] = {}
        self._readings: dict[str, ApiReading] = {}

    def add_calls(self, connection_tag: str, day: str, calls: int) -> int:
        with self._lock:
            total = self._used.get((connection_tag, day), 0) + calls
            self._used[(connection_tag, day)] = total
            return total

    def own_used(self, connection_tag: str, day: str) -> int:
        with self._lock:
            return self._used.get((connection_tag, day), 0)

    def save_reading(self, connection_tag: str, reading: ApiReading) -> None:
        with self._lock:
            self._readings[connection_tag] = reading

    def reading(self, connection_tag: str) -> ApiReading | None:
        with self._lock:
            return self._readings.get(connection_tag)

    def forget_reading(self, connection_tag: str) -> None:
        with self._lock:
            self._readings.pop(connection_tag, None)

    def clear(self) -> None:
        """Forget every count and reading (process state reset)."""
        with self._lock:
            self._used.clear()
            self._readings.clear()


LOCAL_STORE = LocalBudgetStore()
process_state.register(__name__, "LOCAL_STORE", LOCAL_STORE.clear)


def store_for(client: redis.Redis | None) -> BudgetStore:
    """The budget store on ``client`` (a cluster), or this process's (no shared Redis: the demo)."""
    return LOCAL_STORE if client is None else RedisBudgetStore(client)
