"""The body of POST /v1/connections/{c}/backfills and its translation to the backfill domain's options.

Same options as `regsync backfill`: ``where`` (FIELD OP VALUE, checked against Salesforce's describe),
``country``, ``ids`` (instead of an ids file), ``only_failed_run``, ``fields``, ``dry_run`` and ``estimate``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool

from config.settings import get_settings
from worker.api.schemas import MAX_ID, Body
from worker.backfill.options import (
    BackfillOptions,
    check_fields,
    check_only_failed,
    check_where,
    country_condition,
)
from worker.connections.spec import ConnectionSpec
from worker.crm.ids import MAX_IDS, parse_ids
from worker.crm.salesforce import SalesforceClient
from worker.errors import InvalidFilter
from worker.ledger.db import session_scope
from worker.ledger.models import Run
from worker.sync.runtime import load_runtime

FieldName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,79}$")]
SalesforceId = Annotated[str, Field(pattern=r"^[A-Za-z0-9]{15}([A-Za-z0-5]{3})?$")]


class WhereCondition(Body):
    """One filter: a field of the object, an operator and a value (``null`` with = / != is an empty field)."""

    field: FieldName
    op: Literal["=", "!=", "<", "<=", ">", ">=", "LIKE"]
    value: str = Field(max_length=255)


class BackfillRequest(Body):
    """A backfill: which records (all filters must hold; none selects every record) and how."""

    where: list[WhereCondition] = Field(default_factory=list, max_length=20)
    country: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$", description="NO, SE, DK or FI.")
    ids: list[SalesforceId] | None = Field(default=None, min_length=1, max_length=MAX_IDS)
    only_failed_run: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="Re-run this run's failures."
    )
    fields: list[FieldName] | None = Field(
        default=None, min_length=1, max_length=50, description="Mapped fields."
    )
    dry_run: StrictBool = Field(
        default=False, description="Fetch and compare, write nothing; per-field preview."
    )
    estimate: StrictBool = Field(
        default=False, description="Only count the records and the calls; start nothing."
    )

    def needs_salesforce(self) -> bool:
        return bool(self.where) or self.estimate


@contextmanager
def salesforce(connection_id: int) -> Iterator[SalesforceClient]:
    """The connection's Salesforce client (only when a filter must be checked or records counted)."""
    runtime = load_runtime(connection_id)
    with SalesforceClient(runtime.spec, runtime.crm_secret, timeout_s=get_settings().crm_timeout_s) as crm:
        yield crm


def _only_failed(run_id: int, connection_id: int) -> None:
    # Another connection's run and no run at all get the same answer: a key must not learn B's run ids.
    with session_scope() as session:
        run = session.get(Run, run_id)
        if run is None or run.connection_id != connection_id:
            raise InvalidFilter(f"only_failed_run: this connection has no run {run_id}")
        check_only_failed(session, run_id, connection_id)


def to_options(
    body: BackfillRequest, spec: ConnectionSpec, connection_id: int, crm: SalesforceClient | None
) -> BackfillOptions:
    """The domain's options, every one checked now (as the CLI does), so the run cannot fail on them later.

    Raises:
        InvalidFilter: An option does not fit this connection (unknown field, country, run, Id …).
    """
    if body.country:
        country_condition(spec, body.country)
    if body.only_failed_run is not None:
        _only_failed(body.only_failed_run, connection_id)
    where: tuple[dict[str, str], ...] = ()
    if body.where:
        assert crm is not None
        where = check_where([(w.field, w.op, w.value) for w in body.where], crm.describe)
    return BackfillOptions(
        dry_run=body.dry_run,
        fields=check_fields(spec, body.fields) if body.fields is not None else None,
        where=where,
        country=body.country.upper() if body.country else None,
        ids=tuple(parse_ids(body.ids, source="ids")) if body.ids is not None else None,
        only_failed_run=body.only_failed_run,
    )


def estimate_view(connection: str, options: BackfillOptions, result: Any) -> dict[str, Any]:
    return {"connection": connection, "options": options.summary(), "estimate": result.as_dict()}
