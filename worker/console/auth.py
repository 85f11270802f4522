"""Who is looking at the console: the session cookie → the API key's principal, and the CSRF check of forms.

The scope and role rules are the API's own (``worker.api.deps``): this module only finds the principal.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, Request, Response

from worker.api.keys import Principal, principal_of
from worker.api.problems import ApiError
from worker.console.sessions import SessionStore
from worker.ledger.db import session_scope
from worker.roles import Role

COOKIE = "regsync_console"
LOGIN_COOKIE = "regsync_console_login"
PREFIX = "/console"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
#: A form is small: a token, a few ids, a choice; anything larger is refused before it is parsed.
MAX_FORM_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Visitor:
    """A signed-in browser: the key's principal and the CSRF token its forms carry."""

    who: Principal
    csrf: str
    token: str

    @property
    def can_act(self) -> bool:
        """Whether action controls are shown (operators and admins)."""
        return self.who.role.allows(Role.OPERATOR)


class SignInNeeded(ApiError):
    """No live session: pages redirect to the sign-in form."""

    def __init__(self) -> None:
        super().__init__(401, "sign in with an API key")


def sessions(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.sessions
    return store


def visitor(request: Request) -> Visitor:
    """The signed-in visitor (the idle timeout renewed), or SignInNeeded; a revoked key ends the session."""
    token = request.cookies.get(COOKIE, "")
    found = sessions(request).touch(token) if token else None
    if found is None:
        raise SignInNeeded()
    with session_scope() as session:
        who = principal_of(session, found.key_id)
    if who is None:
        sessions(request).delete(token)
        raise SignInNeeded()
    request.state.principal = who  # the API's foreign-id watch counts this key's probes
    request.state.visitor = Visitor(who, found.csrf, token)
    return request.state.visitor  # type: ignore[no-any-return]


async def form(request: Request) -> dict[str, list[str]]:
    """The posted form's fields (URL-encoded; nothing else is read)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if request.method != "POST" or media != "application/x-www-form-urlencoded":
        return {}
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ApiError(413, "the form is too large")
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=1000)


Form = Annotated[dict[str, list[str]], Depends(form)]


def first(fields: dict[str, list[str]], name: str) -> str:
    return (fields.get(name) or [""])[0]


def same_token(sent: str, expected: str) -> bool:
    return bool(sent) and hmac.compare_digest(sent.encode("utf-8"), expected.encode("utf-8"))


def acting(fields: Form, who: Annotated[Visitor, Depends(visitor)]) -> Visitor:
    """The visitor of a state-changing form: 403 unless the form carries the session's CSRF token."""
    if not same_token(first(fields, "csrf"), who.csrf):
        raise ApiError(403, "the form's CSRF token is missing or wrong; reload the page and try again")
    return who


Viewing = Annotated[Visitor, Depends(visitor)]
Acting = Annotated[Visitor, Depends(acting)]


def secure(request: Request) -> bool:
    """Cookies are Secure except on this machine (the demo and tests speak plain HTTP to localhost)."""
    return (request.url.hostname or "") not in LOCAL_HOSTS


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(COOKIE, token, path=PREFIX, httponly=True, samesite="strict", secure=secure(request))


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict", secure=secure(request))


def login_token(request: Request) -> str:
    """The sign-in form's CSRF token (double submit: a short-lived cookie and a hidden field must match)."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)


def set_login_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE, token, max_age=900, path=f"{PREFIX}/login", httponly=True, samesite="strict",
        secure=secure(request),
    )  # fmt: skip
