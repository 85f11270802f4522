"""Purge a connection's data past its retention policy (admin): the same as `regsync purge`, audited with the
caller's address, user agent and key id inside the audit chain (``deps.caller`` sets them for every route)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import Field, Strict

from worker.alerts.report import parse_since
from worker.api.deps import Scoped, scoped
from worker.api.schemas import Body
from worker.ledger.models import utcnow
from worker.retention.policy import PurgeKind
from worker.retention.purge import PurgeRequest, purge_connection
from worker.roles import Role

router = APIRouter(tags=["retention"])


class PurgeIn(Body):
    """What to purge; by default every kind, at the ages of the connection's [retention] policy."""

    dry_run: bool = Field(default=False, description="Count what would go; delete nothing.")
    older_than: str | None = Field(
        default=None, pattern=r"^\d{1,9}[mhdw]$", description="Age instead of the policy's, e.g. 30d."
    )
    kinds: list[Annotated[PurgeKind, Strict(False)]] | None = Field(
        default=None, max_length=len(PurgeKind), description="Only these kinds."
    )


@router.post(
    "/connections/{c}/retention/purge",
    summary="Purge what the connection's retention policy no longer keeps (or count it: dry_run)",
)
def purge(body: PurgeIn, scope: Annotated[Scoped, Depends(scoped(Role.ADMIN))]) -> dict[str, Any]:
    age = parse_since(body.older_than, "older_than") if body.older_than else None
    kinds = frozenset(body.kinds) if body.kinds else frozenset(PurgeKind)
    request = PurgeRequest(kinds, age, body.dry_run)
    return purge_connection(scope.name, request, scope.who.actor, utcnow()).as_dict()
