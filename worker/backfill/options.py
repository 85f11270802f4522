"""Backfills: the options a backfill run carries, which records they select, and starting one (audited).

A backfill is a run of kind ``backfill`` whose ``Run.options`` hold its filters. The planner turns them into
SOQL (``Selection.queries``), the sync honours ``fields`` and ``dry_run`` (``BackfillOptions``). Options of other
runs are empty, which selects every record and changes nothing about how they run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker.backfill.filters import Condition, combine, condition_from_dict, make_condition, where_clause
from worker.connections.apply import load_connection
from worker.connections.spec import ConnectionSpec
from worker.crm.ids import id_batches, id_in, id_order
from worker.crm.port import FieldInfo
from worker.crm.soql import soql_quote
from worker.errors import InvalidFilter, LedgerError
from worker.infra.dispatch import Dispatcher
from worker.ledger import runs
from worker.ledger.audit import append_event
from worker.ledger.db import session_scope
from worker.ledger.models import RecordFailure, Run, RunKind, RunStatus
from worker.orgnr import SUPPORTED_COUNTRIES
from worker.registry.outcomes import NOTICE_CODES


class BackfillOptions(BaseModel):
    """What a backfill selects and how it runs; stored as JSON in ``Run.options``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    dry_run: bool = False
    fields: tuple[str, ...] | None = None
    where: tuple[dict[str, str], ...] = ()
    country: str | None = None
    ids: tuple[str, ...] | None = None
    only_failed_run: int | None = None

    @classmethod
    def from_run(cls, options: Mapping[str, Any] | None) -> BackfillOptions:
        """The options of a run (empty for scheduled and manual runs).

        Raises:
            LedgerError: The stored options do not parse (edited by hand?).
        """
        try:
            return cls.model_validate(dict(options or {}))
        except ValidationError:
            raise LedgerError(
                "the run's stored options are not valid; cancel it and start a new backfill"
            ) from None

    def to_run(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_defaults=True)

    def conditions(self, spec: ConnectionSpec) -> list[Condition]:
        """The ``--where`` conditions and the ``--country`` condition (if the connection needs one)."""
        found = [condition_from_dict(item) for item in self.where]
        country = country_condition(spec, self.country) if self.country else None
        return found + ([country] if country else [])

    def filter_where(self, spec: ConnectionSpec) -> str | None:
        return where_clause(self.conditions(spec))

    def effective_spec(self, spec: ConnectionSpec) -> ConnectionSpec:
        """``spec`` with its mapping limited to ``fields`` (the whole mapping when none are given)."""
        if self.fields is None:
            return spec
        return spec.model_copy(update={"mapping": {name: spec.mapping[name] for name in self.fields}})

    def summary(self) -> dict[str, Any]:
        """The options for the audit trail and run views (an ids list is summarised as its length)."""
        data = self.to_run()
        if self.ids is not None:
            data["ids"] = len(self.ids)
        return data


def country_condition(spec: ConnectionSpec, country: str) -> Condition | None:
    """``country_field = 'NO'``; None when the connection's country is fixed to that very country.

    Raises:
        InvalidFilter: Unsupported country, or a fixed-country connection asked for another country.
    """
    code = country.strip().upper()
    if code not in SUPPORTED_COUNTRIES:
        raise InvalidFilter(f"the country must be one of {sorted(SUPPORTED_COUNTRIES)}, not {country!r}")
    sf = spec.salesforce
    if sf.country is not None:
        if sf.country.upper() != code:
            raise InvalidFilter(
                f"connection {spec.name!r} only holds {sf.country} records; --country {code} "
                "would select nothing"
            )
        return None
    return Condition(str(sf.country_field), "=", code, "string")


@dataclass(frozen=True, slots=True)
class Selection:
    """The records a run plans: those matching ``where``, and only the listed ``ids`` when there is a list."""

    where: str | None = None
    ids: tuple[str, ...] | None = None

    def queries(self, after: str | None) -> Iterator[str | None]:
        """WHERE clauses streaming the selection in Id order, resuming after the record Id ``after``."""
        cursor = None if after is None else f"Id > {soql_quote(after)}"
        if self.ids is None:
            yield combine(self.where, cursor)
            return
        for batch in id_batches(self.ids):
            if after is not None and id_order(batch[-1]) <= id_order(after):
                continue  # planned before the planner was resumed: costs no query
            yield combine(self.where, id_in(batch), cursor)


def selection_for(run: Run, spec: ConnectionSpec) -> Selection:
    """What a run selects: everything (scheduled, manual) or what its backfill options say."""
    return resolve_selection(BackfillOptions.from_run(run.options), run.connection_id, spec)


def resolve_selection(options: BackfillOptions, connection_id: int, spec: ConnectionSpec) -> Selection:
    """The selection of ``options``, with the failed records of an ``--only-failed`` run read from the ledger."""
    ids = options.ids
    if options.only_failed_run is not None:
        with session_scope() as session:
            failed = failed_record_ids(session, options.only_failed_run, connection_id)
        ids = tuple(failed) if ids is None else tuple(set(ids) & set(failed))
    return Selection(options.filter_where(spec), ids)


#: Registry notices share the failures table but did not fail: `--only-failed` leaves them out.
_NOT_A_NOTICE = RecordFailure.error_code.not_in(sorted(NOTICE_CODES))


def failed_record_ids(session: Session, run_id: int, connection_id: int) -> list[str]:
    """The records that failed in run ``run_id`` of the same connection.

    Raises:
        InvalidFilter: That run belongs to another connection.
    """
    run = runs.get_run(session, run_id)
    if run.connection_id != connection_id:
        raise InvalidFilter(
            f"run {run_id} belongs to another connection; only its own runs' failures can be re-run"
        )
    query = select(RecordFailure.record_id).where(RecordFailure.run_id == run_id, _NOT_A_NOTICE)
    return list(dict.fromkeys(session.execute(query).scalars()))


def check_only_failed(session: Session, run_id: int, connection_id: int) -> int:
    """How many records failed in run ``run_id``, refusing runs that cannot be re-run yet.

    Raises:
        InvalidFilter: Another connection's run, a run still going, or a run without failures.
    """
    run = runs.get_run(session, run_id)
    if run.connection_id != connection_id:
        raise InvalidFilter(
            f"run {run_id} belongs to another connection; only its own runs' failures can be re-run"
        )
    if not RunStatus(run.status).final:
        raise InvalidFilter(f"run {run_id} is still {run.status}; wait until it ends to re-run its failures")
    count = session.scalar(
        select(func.count()).select_from(RecordFailure).where(RecordFailure.run_id == run_id, _NOT_A_NOTICE)
    )
    if not count:
        raise InvalidFilter(f"run {run_id} has no failed records; nothing to re-run")
    return int(count)


def check_fields(spec: ConnectionSpec, fields: Sequence[str]) -> tuple[str, ...]:
    """``--fields``: canonical fields of the connection's mapping.

    Raises:
        InvalidFilter: A name is not mapped by this connection, or none is given.
    """
    names = tuple(dict.fromkeys(name.strip() for name in fields if name.strip()))
    unknown = [name for name in names if name not in spec.mapping]
    if unknown or not names:
        raise InvalidFilter(
            f"fields not mapped: {', '.join(unknown) or 'none given'}; this connection maps {', '.join(spec.mapping)}"
        )
    return names


def check_where(
    where: Sequence[tuple[str, str, str]], describe: Callable[[], Mapping[str, FieldInfo]]
) -> tuple[dict[str, str], ...]:
    """``--where`` conditions checked against the object's describe (fetched only when there is one)."""
    if not where:
        return ()
    fields = describe()
    return tuple(make_condition(field, op, value, fields).as_dict() for field, op, value in where)


def start_backfill(connection: str, options: BackfillOptions, *, actor: str, dispatch: Dispatcher) -> int:
    """Queue a backfill run, audit it in the same transaction, and send its planning task; returns its id."""
    with session_scope() as session:
        row, _spec = load_connection(session, connection)
        run = runs.create_run(
            session, row.id, kind=RunKind.BACKFILL, triggered_by=actor, options=options.to_run()
        )
        append_event(
            session,
            actor=actor,
            action="backfill.start",
            target=f"connection:{connection}",
            after={"run_id": run.id, **options.summary()},
        )
        run_id = run.id
    dispatch.plan(run_id)
    return run_id
