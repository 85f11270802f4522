"""Where an audited action came from: the CLI (OS user, host) or the HTTP API (client address, user agent, the
API key's id, never the key), with a correlation id. ``append_event`` puts it inside the event's hash.

The origin is a context variable: the CLI sets it for the whole command; in the API, the middleware opens a slot
per request (``request_scope``) and the authentication dependency fills it (``set_origin``), so every route's
events carry it.
"""

from __future__ import annotations

import contextvars
import getpass
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

Origin = dict[str, str]

_CURRENT: contextvars.ContextVar[Origin | None] = contextvars.ContextVar("regsync_audit_origin", default=None)
#: Longest value kept of a caller-supplied field (a user agent): bounded, so an event cannot be bloated.
MAX_FIELD = 200


def current_origin() -> Origin | None:
    return _CURRENT.get()


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (containers)
        return "unknown"


def cli_origin() -> Origin:
    """This process as a CLI command: OS user, host, a fresh correlation id."""
    return {
        "via": "cli",
        "os_user": _os_user(),
        "host": socket.gethostname(),
        "correlation_id": uuid.uuid4().hex,
    }


def api_origin(client: str | None, user_agent: str | None, key_id: int, correlation_id: str) -> Origin:
    """An HTTP request: the client's address, its user agent (cut to ``MAX_FIELD``), the key's id."""
    return {
        "via": "api",
        "client": (client or "unknown")[:MAX_FIELD],
        "user_agent": (user_agent or "")[:MAX_FIELD],
        "api_key_id": str(key_id),
        "correlation_id": correlation_id,
    }


def set_origin(origin: Origin | None) -> contextvars.Token[Origin | None]:
    """Make ``origin`` current for the rest of this context (an API request's task, opened by ``request_scope``)."""
    return _CURRENT.set(origin)


@contextmanager
def request_scope() -> Iterator[None]:
    """One request's slot: no origin until ``set_origin`` fills it, and whatever was set is gone afterwards."""
    token = _CURRENT.set(None)
    try:
        yield
    finally:
        _CURRENT.reset(token)


@contextmanager
def origin_scope(origin: Origin) -> Iterator[Origin]:
    """Audit events appended inside this block carry ``origin``."""
    token = _CURRENT.set(origin)
    try:
        yield origin
    finally:
        _CURRENT.reset(token)
