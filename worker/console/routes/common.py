"""Pieces every console section uses: the connection scope (the API's dependency, called directly), enum query
values that may be blank, and the redirect after an action."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from fastapi.responses import RedirectResponse

from worker.api.deps import Scoped, scoped
from worker.api.problems import ApiError
from worker.console.auth import Visitor
from worker.roles import Role

E = TypeVar("E", bound=StrEnum)


def scope(visitor: Visitor, connection: str, role: Role = Role.VIEWER) -> Scoped:
    """The API's scope check: 404 for a connection outside the key's scope, then 403 below ``role``."""
    return scoped(role)(connection, visitor.who)


def choice(kind: type[E], value: str | None) -> E | None:
    """A filter's value (blank = any); 422 for one that is not a member."""
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        raise ApiError(422, f"not a valid {kind.__name__} filter") from None


def after_action(path: str, said: str) -> RedirectResponse:
    """Back to the page the action was taken on (post/redirect/get), with a fixed note naming what happened."""
    return RedirectResponse(f"{path}?said={said}", status_code=303)
