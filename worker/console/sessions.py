"""Console sessions: a random token in the cookie, the signed-in key's id and a CSRF token on the server.

Only the sha256 of the token is used as the store's key, so a copy of Redis holds nothing a browser could
replay. Each read renews the idle timeout (REGSYNC_CONSOLE_IDLE_MINUTES); an idle session expires by itself.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import redis

from config.settings import Settings
from worker.errors import SharedStateUnavailable
from worker.infra.shared_state import shared_redis

_PREFIX = "regsync:console:session:"


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A signed-in browser: whose key (by id) and the CSRF token its forms must carry."""

    key_id: int
    csrf: str


class SessionStore(Protocol):
    idle_s: float

    def create(self, key_id: int) -> tuple[str, ConsoleSession]:
        """A new session; returns the cookie's token (the only copy) and the session."""

    def touch(self, token: str) -> ConsoleSession | None:
        """The live session of ``token`` with its idle timeout renewed, or None (unknown or expired)."""

    def delete(self, token: str) -> None:
        """Sign out: the token is forgotten at once."""


def _name(token: str) -> str:
    return _PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()


@contextmanager
def _redis_errors() -> Iterator[None]:
    """A Redis failure becomes the one error the console answers 503 for (nobody is signed in meanwhile)."""
    try:
        yield
    except (redis.RedisError, OSError) as exc:
        raise SharedStateUnavailable(
            f"console sessions: Redis did not answer ({type(exc).__name__})"
        ) from exc


def _new() -> tuple[str, ConsoleSession]:
    return secrets.token_urlsafe(32), ConsoleSession(0, secrets.token_urlsafe(32))


class RedisSessionStore:
    """Sessions in Redis, shared by every web process; the key's TTL is the idle timeout."""

    def __init__(self, client: redis.Redis, idle_s: float) -> None:
        self.client = client
        self.idle_s = idle_s

    def create(self, key_id: int) -> tuple[str, ConsoleSession]:
        token, blank = _new()
        session = ConsoleSession(key_id, blank.csrf)
        body = json.dumps({"key_id": key_id, "csrf": session.csrf})
        with _redis_errors():
            self.client.set(_name(token), body, px=int(self.idle_s * 1000))
        return token, session

    def touch(self, token: str) -> ConsoleSession | None:
        with _redis_errors(), self.client.pipeline(transaction=True) as pipe:
            pipe.get(_name(token))
            pipe.pexpire(_name(token), int(self.idle_s * 1000))
            body, _ = pipe.execute()
        if body is None:
            return None
        data = json.loads(body)
        return ConsoleSession(int(data["key_id"]), str(data["csrf"]))

    def delete(self, token: str) -> None:
        with _redis_errors():
            self.client.delete(_name(token))


class MemorySessionStore:
    """Sessions in this process (the embedded demo, where there is one web process and maybe no Redis)."""

    def __init__(self, idle_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self._clock = clock
        self._lock = threading.Lock()
        self._live: dict[str, tuple[ConsoleSession, float]] = {}

    def create(self, key_id: int) -> tuple[str, ConsoleSession]:
        token, blank = _new()
        session = ConsoleSession(key_id, blank.csrf)
        with self._lock:
            self._live[_name(token)] = (session, self._clock() + self.idle_s)
        return token, session

    def touch(self, token: str) -> ConsoleSession | None:
        now = self._clock()
        with self._lock:
            self._live = {k: v for k, v in self._live.items() if v[1] > now}
            found = self._live.get(_name(token))
            if found is None:
                return None
            self._live[_name(token)] = (found[0], now + self.idle_s)
            return found[0]

    def delete(self, token: str) -> None:
        with self._lock:
            self._live.pop(_name(token), None)


def make_store(settings: Settings) -> SessionStore:
    """Redis when cluster-wide state lives there (REGSYNC_SHARED_STATE), else this process."""
    idle_s = settings.console_idle_minutes * 60
    client = shared_redis(settings)
    return MemorySessionStore(idle_s) if client is None else RedisSessionStore(client, idle_s)
