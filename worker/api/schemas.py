"""Request and response bodies of the HTTP API; every request body rejects unknown fields."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from worker.ledger.models import RunKind, RunMode, RunStatus

#: Same rule as connection names in connection files (worker/connections/spec.py).
CONNECTION_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"
MAX_ID = 2**63 - 1
MAX_PAGE = 200


def _to_utc(value: dt.datetime) -> dt.datetime:
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:  # within an offset of year 1 or 9999: as good as the very beginning or end of time
        edge = dt.datetime.min if value.year == 1 else dt.datetime.max
        return edge.replace(tzinfo=dt.UTC)


#: A timestamp with an explicit offset (e.g. 2026-01-31T00:00:00Z), normalised to UTC.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


class Body(BaseModel):
    """A request body: unknown fields are an error, not silently ignored; types are strict (an integer field
    refuses "5", 5.5 and true, as a boolean refuses "yes")."""

    model_config = ConfigDict(extra="forbid", strict=True)


class FieldError(BaseModel):
    loc: list[str] = Field(description="Where in the request: e.g. `body`, `enabled`.")
    msg: str = Field(description="What is wrong with it.")


class Problem(BaseModel):
    """An error answer: RFC 9457 problem details (``application/problem+json``) with our two extensions."""

    type: str = Field(description="A URI naming the kind of problem, e.g. `urn:regsync:problem:not-found`.")
    title: str = Field(description="The HTTP status's phrase, e.g. `Not Found`.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong and what to do.")
    instance: str = Field(description="This occurrence: `urn:regsync:request:<correlation_id>`.")
    code: str = Field(description="Stable machine-readable code, e.g. NOT_FOUND.")
    correlation_id: str = Field(description="Quote it when asking for help; it is in the server log too.")
    errors: list[FieldError] | None = Field(default=None, description="Field errors of a 422.")


class RunOut(BaseModel):
    """A run: its state, times and counts (same keys as `regsync runs show --json`)."""

    id: int
    connection: str
    kind: RunKind
    mode: RunMode = Field(description="What the run reads: every record (`full`) or only what changed.")
    status: RunStatus
    triggered_by: str
    scheduled_for: dt.datetime | None
    queued_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    duration_s: float | None
    planned: int
    invalid: int
    fetched: int
    unchanged: int
    updated: int
    failed: int
    protected: int = Field(description="Fields kept because someone edited them by hand (protect_manual).")
    opted_out: int = Field(description="Records that opted out of registry updates.")
    out_of_scope: int = Field(description="Records skipped: the registry does not cover their country.")
    registry_not_found: int = Field(
        description="Records whose org number the registry does not know (also counted in their fate)."
    )
    registry_deleted: int = Field(
        description="Records whose company the registry says was deleted or removed (also counted in their fate)."
    )
    registry_inactive: int = Field(
        description="Records whose company is inactive, dissolved, bankrupt or in liquidation (also in their fate)."
    )
    status_unknown: int = Field(
        description="Records whose registry status was missing or not understood: status left alone."
    )
    review: int = Field(
        description="Field changes sent to review (policy `review`) instead of being written."
    )
    feed_pages: int = Field(description="Changes run: feed pages read.")
    changes_seen: int = Field(description="Changes run: feed items seen.")
    changes_matched: int = Field(description="Changes run: feed items matched to a record of this CRM.")
    changes_unmapped: int = Field(description="Changes run: matched items skipped, no mapped path changed.")
    registry_calls: int
    crm_calls: int
    api_used_before: int | None
    api_used_after: int | None
    api_limit: int | None
    chunks_total: int
    chunks_done: int
    not_processed: int
    dry_run: bool = Field(description="A dry run: `updated` counts the updates it would have made.")
    error_code: str | None
    error: str | None
    options: dict[str, Any] = Field(default_factory=dict, description="Backfill filters (ids as a count).")


class Progress(BaseModel):
    """How far a run is, and when it will probably end (ETA from the chunk rate so far)."""

    planning_complete: bool
    chunks_total: int
    chunks_done: int
    records_planned: int
    records_done: int
    percent: float | None = Field(description="Chunks done of all chunks, once planning is complete.")
    eta_s: float | None = Field(description="Seconds until the run probably ends; null when unknown.")
    eta_at: dt.datetime | None


class FieldChange(BaseModel):
    field: str
    count: int = Field(description="Records whose field this dry run would change.")


class RunDetail(RunOut):
    progress: Progress
    field_changes: list[FieldChange] | None = Field(
        description="Dry runs only: changes per field, no values."
    )


class RunPage(BaseModel):
    items: list[RunOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class FailureOut(BaseModel):
    record_id: str
    org_number: str | None
    error_code: str
    notice: bool = Field(
        description="A registry outcome (e.g. REGISTRY_DELETED), not a failure: synced where mapped."
    )
    message: str
    attempt: int
    at: dt.datetime | None


class FailurePage(BaseModel):
    items: list[FailureOut]
    next_cursor: str | None


class CheckOut(BaseModel):
    ok: bool
    detail: str | None = None


class ProcessesOut(BaseModel):
    ok: bool
    alive: int = Field(description="Processes that sent a heartbeat recently.")
    newest_age_s: float | None = Field(description="Seconds since the most recent heartbeat.")


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    ledger: CheckOut
    redis: CheckOut
    beat: ProcessesOut
    workers: ProcessesOut


class CancelOut(BaseModel):
    run: RunOut
    before: RunStatus = Field(description="The run's status when the cancel arrived.")
    chunks_dropped: int = Field(description="Queued chunks dropped; running ones finish first.")


class EstimateCounts(BaseModel):
    records: int
    records_is_upper_bound: bool
    count_calls: int
    query_calls: int
    read_calls: int
    write_calls_max: int
    registry_calls_max: int
    check_calls: int = Field(description="The run-start check: describe and permission queries.")
    describe_calls_max: int = Field(description="Describes before writes, at most (one per worker session).")
    crm_calls_max: int


class EstimateOut(BaseModel):
    """What a backfill would cost; nothing was started."""

    connection: str
    options: dict[str, Any]
    estimate: EstimateCounts
