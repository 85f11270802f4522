"""Store a validated connection spec in the ledger: idempotent, audited with a field-by-field diff.

Checking the mapping against the CRM's ``describe`` is not done here; the CLI runs a checker before it
calls :func:`apply_connection`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker.connections.spec import ConnectionSpec, parse_spec
from worker.errors import ConnectionNotFound, StateConflict
from worker.ledger.audit import append_event, canonical_json
from worker.ledger.models import Connection
from worker.scheduling.store import set_schedule

ApplyAction = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What :func:`apply_connection` did; ``diff`` maps dotted keys to ``[old, new]``."""

    action: ApplyAction
    connection_id: int
    diff: dict[str, list[Any]] = field(default_factory=dict)
    schedule: str | None = None  # what applying the file's [schedule] did (None: the file has none)


def spec_data(spec: ConnectionSpec) -> dict[str, Any]:
    """The spec as stored in ``Connection.spec`` (JSON-native values)."""
    return spec.model_dump(mode="json")


def spec_hash(data: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a stored spec."""
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys: ``{"a": {"b": 1}}`` → ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def diff_specs(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[Any]]:
    """Every dotted key whose value differs between two stored specs, as ``[old, new]`` (None = absent)."""
    before, after = flatten(old), flatten(new)
    keys = sorted(set(before) | set(after))
    return {key: [before.get(key), after.get(key)] for key in keys if before.get(key) != after.get(key)}


def _audit(session: Session, actor: str, action: str, name: str, diff: dict[str, list[Any]]) -> None:
    append_event(
        session,
        actor=actor,
        action=action,
        target=f"connection:{name}",
        before={key: change[0] for key, change in diff.items()} if action != "connection.create" else None,
        after={key: change[1] for key, change in diff.items()},
    )


def _create(session: Session, spec: ConnectionSpec, data: dict[str, Any], actor: str) -> ApplyResult:
    connection = Connection(name=spec.name, spec=data, spec_hash=spec_hash(data))
    session.add(connection)
    try:
        session.flush()
    except IntegrityError:
        raise StateConflict(
            f"connection {spec.name!r} was created by someone else just now; apply again"
        ) from None
    diff = diff_specs({}, data)
    _audit(session, actor, "connection.create", spec.name, diff)
    return ApplyResult("created", connection.id, diff)


def apply_connection(session: Session, spec: ConnectionSpec, actor: str) -> ApplyResult:
    """Create or update the connection ``spec.name`` so that it holds ``spec``; audit any change.

    Applying the same spec again changes nothing and writes no audit event. A ``[schedule]`` in the file is
    made the stored schedule (audited as ``schedule.set`` when that changes it); without one, the stored
    schedule (from `regsync schedule set`) is left alone.

    Args:
        session: A session on the ledger; the caller commits.
        spec: The validated connection spec.
        actor: Who applies it, for the audit trail.

    Returns:
        ``created``, ``updated`` (with the changed dotted keys) or ``unchanged``.

    Raises:
        StateConflict: Someone created the same connection concurrently.
    """
    result = _apply_spec(session, spec, actor)
    if spec.schedule is None:
        return result
    connection = session.get_one(Connection, result.connection_id)
    return replace(result, schedule=set_schedule(session, connection, spec.schedule, actor))


def _apply_spec(session: Session, spec: ConnectionSpec, actor: str) -> ApplyResult:
    data = spec_data(spec)
    connection = session.scalar(select(Connection).where(Connection.name == spec.name).with_for_update())
    if connection is None:
        return _create(session, spec, data, actor)
    new_hash = spec_hash(data)
    if connection.spec_hash == new_hash:
        return ApplyResult("unchanged", connection.id)
    diff = diff_specs(connection.spec, data)
    connection.spec, connection.spec_hash = data, new_hash
    _audit(session, actor, "connection.update", spec.name, diff)
    return ApplyResult("updated", connection.id, diff)


def load_connection(session: Session, name: str) -> tuple[Connection, ConnectionSpec]:
    """The stored connection ``name`` and its spec, validated again.

    Raises:
        ConnectionNotFound: No connection has that name.
    """
    connection = session.scalar(select(Connection).where(Connection.name == name))
    if connection is None:
        raise ConnectionNotFound(
            f"no connection named {name!r}; list them with `regsync connection list` "
            "or apply one with `regsync connection apply FILE`"
        )
    return connection, parse_spec(connection.spec)
