"""The name-match review queue: list the records waiting, approve a candidate (its org number is written) or
reject them all (the record is not asked again until its name changes). Every decision is audited with its
actor and the match id, never a name or an org number; no log line carries one either.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from worker.connections.spec import ConnectionSpec
from worker.crm.port import CrmClient
from worker.errors import NameMatchNotFound, StateConflict
from worker.ledger.audit import append_event
from worker.ledger.db import session_scope, updated_one
from worker.ledger.models import Connection, utcnow
from worker.matching import store
from worker.matching.models import MatchStatus, NameMatch


def match_view(row: NameMatch) -> dict[str, Any]:
    """One row as `regsync matches list --json` and the API show it (the CRM's name only while it waits)."""
    return {
        "id": row.id,
        "run_id": row.run_id,
        "record_id": row.record_id,
        "object": row.object,
        "country": row.country,
        "status": row.status,
        "reason": row.reason,
        "crm_name": row.crm_name,
        "candidates": row.candidates,
        "org_number": row.org_number,
        "decided_by": row.decided_by,
        "decided_at": row.decided_at,
        "created_at": row.created_at,
    }


def list_waiting(session: Session, connection_id: int, limit: int = 100) -> list[dict[str, Any]]:
    return [match_view(row) for row in store.waiting(session, connection_id, limit)]


def connection_of(session: Session, match_id: int) -> int | None:
    """The connection that holds match ``match_id`` (None: no such match), for a scope check."""
    row = session.get(NameMatch, match_id)
    return None if row is None else row.connection_id


def get_match(session: Session, connection_id: int, match_id: int) -> NameMatch:
    """The connection's match ``match_id``.

    Raises:
        NameMatchNotFound: no such match for this connection (another connection's id reads as unknown).
    """
    row = session.get(NameMatch, match_id)
    if row is None or row.connection_id != connection_id:
        raise NameMatchNotFound(f"no name match {match_id} for this connection")
    return row


def approve(
    spec: ConnectionSpec,
    connection_id: int,
    match_id: int,
    *,
    org_number: str | None,
    actor: str,
    crm: CrmClient,
    index: int | None = None,
) -> str:
    """Write the chosen candidate's org number; returns it.

    Args:
        org_number: the candidate to take, by its org number; or
        index: the candidate to take, by its place in ``candidates`` (0 is the best). Neither: the best.

    Raises:
        NameMatchNotFound: no such match.
        StateConflict: it is not waiting in review, the choice is not one of its candidates, or the write was
            refused (the match stays in review).
    """
    with session_scope() as session:
        row = get_match(session, connection_id, match_id)
        _require_waiting(row)
        chosen = _chosen(row, org_number, index)
        record_id = row.record_id
    answer = crm.update([{"Id": record_id, spec.salesforce.org_number_field: chosen}])[0]
    if not answer.success:
        raise StateConflict(f"Salesforce refused the write ({answer.error_code}); the match stays in review")
    _decide(connection_id, match_id, MatchStatus.APPROVED, actor, chosen)
    return chosen


def reject(connection_id: int, match_id: int, actor: str) -> None:
    """None of the candidates fits: the record is not asked again until its name changes.

    Raises:
        NameMatchNotFound: no such match.
        StateConflict: it is not waiting in review.
    """
    with session_scope() as session:
        _require_waiting(get_match(session, connection_id, match_id))
    _decide(connection_id, match_id, MatchStatus.REJECTED, actor, None)


def _require_waiting(row: NameMatch) -> None:
    if row.status != MatchStatus.REVIEW.value:
        raise StateConflict(f"name match {row.id} is {row.status}, not waiting in review")


def _chosen(row: NameMatch, org_number: str | None, index: int | None) -> str:
    numbers = [str(candidate["org_number"]) for candidate in row.candidates]
    if not numbers:
        raise StateConflict(f"name match {row.id} has no candidates to approve; reject it instead")
    if org_number is not None and index is not None:
        raise StateConflict("choose a candidate by its org number or by its index, not both")
    if index is not None:
        if not 0 <= index < len(numbers):
            raise StateConflict(f"name match {row.id} has candidates 0 to {len(numbers) - 1}")
        return numbers[index]
    if org_number is None:
        return numbers[0]
    if org_number not in numbers:
        raise StateConflict(f"that org number is not a candidate of name match {row.id}")
    return org_number


def _decide(
    connection_id: int, match_id: int, status: MatchStatus, actor: str, org_number: str | None
) -> None:
    """Compare-and-set review → ``status``, clearing the CRM's name, and audit it in the same transaction."""
    values = {
        "status": status.value, "org_number": org_number, "crm_name": None, "decided_by": actor,
        "decided_at": utcnow(), "updated_at": utcnow(),
    }  # fmt: skip
    with session_scope() as session:
        won = session.execute(
            update(NameMatch)
            .where(NameMatch.id == match_id, NameMatch.status == MatchStatus.REVIEW.value)
            .values(**values)
        )
        if not updated_one(won):
            raise StateConflict(f"name match {match_id} was decided meanwhile")
        append_event(
            session, actor=actor, action=f"name_match.{'approve' if org_number else 'reject'}",
            target=_target(session, connection_id, match_id), before={"match": match_id, "status": "review"},
            after={"match": match_id, "status": status.value},
        )  # fmt: skip


def _target(session: Session, connection_id: int, match_id: int) -> str:
    """``connection:NAME/match:ID``, as alerts are named, so the connection's audit page lists it."""
    connection = session.get(Connection, connection_id)
    name = connection.name if connection is not None else str(connection_id)
    return f"connection:{name}/match:{match_id}"
