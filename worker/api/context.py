"""The correlation id of the request being served (a context variable, so logs and errors can quote it)."""

from __future__ import annotations

import contextvars
import re
import uuid

_CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("regsync_correlation_id", default="-")
#: An inbound X-Correlation-ID is kept only if it looks like an id (no log injection, bounded length).
_SAFE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def correlation_id() -> str:
    return _CURRENT.get()


def begin(inbound: str | None) -> tuple[str, contextvars.Token[str]]:
    """Start a request: keep a well-formed inbound id or make one; returns it and a token for :func:`end`."""
    value = inbound if inbound and _SAFE.match(inbound) else uuid.uuid4().hex
    return value, _CURRENT.set(value)


def end(token: contextvars.Token[str]) -> None:
    _CURRENT.reset(token)
