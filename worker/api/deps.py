"""Who is calling and what they may see: API key → principal, rate limit, connection scope, role.

Order matters and is the same everywhere: 401 (no or bad key) → 429 (too many requests) → 404 (not in the
key's connections, told apart from nothing) → 403 (in scope, but the role is too low) → 422 (bad input).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from worker.api import access_watch, context
from worker.api.keys import Principal, authenticate
from worker.api.problems import ApiError, not_found
from worker.api.schemas import CONNECTION_NAME
from worker.api.throttle import Throttle
from worker.ledger.db import session_scope
from worker.ledger.origin import api_origin, set_origin
from worker.roles import Role

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key from `regsync apikey create`, sent as `Authorization: Bearer rsk_…`.",
)


def _unauthenticated(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": 'Bearer realm="regsync"'})


def principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
) -> Principal:
    """The caller's principal; 401 without a valid, unrevoked key, 429 over the key's rate limit or over the
    address's limit of failed authentications."""
    if credentials is None or not credentials.credentials:
        raise _unauthenticated("an API key is required: send `Authorization: Bearer <key>`")
    access_watch.refuse_blocked(request)
    with session_scope() as session:
        who = authenticate(session, credentials.credentials)
    if who is None:
        refusal = _unauthenticated("the API key is not valid (unknown or revoked)")
        raise access_watch.failed_authentication(request, refusal)
    request.state.principal = who
    throttle: Throttle = request.app.state.throttle
    retry_after = throttle.hit(str(who.key_id))
    if retry_after is not None:
        raise ApiError(
            429,
            f"too many requests for this API key; retry in {retry_after:.0f} s",
            headers={"Retry-After": str(int(retry_after))},
        )
    return who


async def caller(request: Request, who: Annotated[Principal, Depends(principal)]) -> Principal:
    """The caller's principal; audit events of this request now carry where it came from (client address, user
    agent, the key's id, never the key, and the correlation id).

    Async on purpose: it runs in the request's own context, so the origin it sets reaches the route (a sync
    dependency runs in a worker thread whose context is thrown away).
    """
    client = request.client.host if request.client else None
    agent = request.headers.get("user-agent")
    set_origin(api_origin(client, agent, who.key_id, context.correlation_id()))
    return who


#: Every authenticated route depends on this (directly or through ``scoped``), so every API action is audited
#: with its origin.
Caller = Annotated[Principal, Depends(caller)]


def require(who: Principal, role: Role) -> None:
    """403 unless ``who`` has at least ``role`` (call it after the scope check, so 404 wins)."""
    if not who.role.allows(role):
        raise ApiError(403, f"this needs the {role.value} role; your API key is {who.role.value}")


@dataclass(frozen=True, slots=True)
class Scoped:
    """A connection the caller may see, and the caller."""

    id: int
    name: str
    who: Principal


ConnectionName = Annotated[str, Path(pattern=CONNECTION_NAME, description="Connection name.")]


def scoped(role: Role) -> Callable[[ConnectionName, Principal], Scoped]:
    """A dependency: the path's connection if the key is scoped to it (else 404) and has ``role`` (else 403)."""

    def dependency(c: ConnectionName, who: Caller) -> Scoped:
        connection_id = who.connection_id(c)
        if connection_id is None:
            raise not_found("connection")
        require(who, role)
        return Scoped(connection_id, c, who)

    return dependency
