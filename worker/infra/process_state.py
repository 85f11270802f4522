"""Every cache a regsync process keeps between calls, and one function that forgets them all.

A module that keeps state across calls (an engine per URL, a Redis client, a limiter, a token, a heartbeat
thread) registers how to forget it, next to where it defines it::

    _LIMITERS: dict[..., RateLimiter] = {}
    process_state.register(__name__, "_LIMITERS", _LIMITERS.clear)

:func:`reset_process_state` then runs every registered reset: the demo calls it after it rewrote the
environment, the tests' ``clean_env`` fixture before and after each test. ``tests/unit/test_process_state.py``
finds every module-level cache in ``worker/``, ``tasks/`` and ``config/`` and fails if one is not registered,
so that a new cache cannot be forgotten.

``config/`` imports nothing of regsync's, so its two caches (the settings and the Celery app) are registered
here instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Cache:
    """One registered cache: where it lives (``module.name``) and how to forget it."""

    module: str
    name: str
    reset: Callable[[], None]

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


_REGISTRY: dict[str, Cache] = {}
_REGISTRY_LOCK = threading.Lock()


def register(module: str, name: str, reset: Callable[[], None]) -> None:
    """Register the cache ``module.name``; :func:`reset_process_state` calls ``reset`` (no reset reads another
    cache, so their order does not matter).

    Registering a name again (a module reloaded) replaces the earlier reset.
    """
    cache = Cache(module, name, reset)
    with _REGISTRY_LOCK:
        _REGISTRY.pop(cache.qualname, None)
        _REGISTRY[cache.qualname] = cache


def registered() -> list[Cache]:
    """The registered caches, in the order they are reset."""
    with _REGISTRY_LOCK:
        return list(_REGISTRY.values())


def reset_process_state() -> None:
    """Forget every cache of this process: settings, Celery app, engines, Redis clients, limiters, tokens,
    heartbeat threads, the local budget store and company caches, the describe cache.

    The next call rebuilds each from the current environment. Only caches of imported modules are registered;
    a module not imported yet has nothing to forget.
    """
    for cache in registered():
        cache.reset()


def _reset_settings() -> None:
    from config.settings import reset_settings

    reset_settings()


def _reset_app() -> None:
    from config.celery import reset_app

    reset_app()


# config/ may not import worker/: its caches are registered from this side.
register("config.celery", "_APPS", _reset_app)
register("config.settings", "get_settings", _reset_settings)
