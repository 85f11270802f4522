"""The ``[schedule]`` table of a connection file, validated like the rest of the file."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from worker.errors import ScheduleInvalid
from worker.scheduling.cron import parse_cron, parse_timezone
from worker.scheduling.models import DEFAULT_GRACE_S, DEFAULT_STARTING_DEADLINE_S

MAX_STARTING_DEADLINE_S = 7 * 24 * 3600
MAX_GRACE_S = 24 * 3600


class TimingSpec(BaseModel):
    """When one kind of run (full or changes) starts by itself: the fields shared by ``[schedule]`` and
    ``[schedule.changes]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cron: str = Field(description="Five-field cron expression read on the zone's wall clock.")
    timezone: str = Field(description="IANA time zone, e.g. Europe/Oslo.")
    concurrency: Literal["forbid", "replace", "allow"] = Field(
        default="forbid", description="What a slot does while a run of this connection is still active."
    )
    starting_deadline_s: int = Field(
        default=DEFAULT_STARTING_DEADLINE_S,
        ge=0,
        le=MAX_STARTING_DEADLINE_S,
        description="Seconds after its slot a missed run may still start (catch-up after downtime).",
    )
    grace_s: int = Field(
        default=DEFAULT_GRACE_S,
        ge=0,
        le=MAX_GRACE_S,
        description="Seconds after its slot a run may go unstarted before alerting calls it missed.",
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        try:
            return parse_cron(value)
        except ScheduleInvalid as exc:
            raise ValueError(exc.message) from None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            parse_timezone(value)
        except ScheduleInvalid as exc:
            raise ValueError(exc.message) from None
        return value


class ChangesScheduleSpec(TimingSpec):
    """When the connection's changes runs start (``[schedule.changes]``): only what changed in the CRM and in
    the registry's change feed since the last one. Hourly is typical, next to a weekly full reconcile."""


class ScheduleSpec(TimingSpec):
    """When the connection's mass update runs by itself, once an admin has enabled it.

    Example (a weekly full reconcile and hourly changes runs)::

        [schedule]
        cron = "0 2 * * 0"
        timezone = "Europe/Oslo"
        concurrency = "forbid"

        [schedule.changes]
        cron = "15 * * * *"
        timezone = "Europe/Oslo"
    """

    changes: ChangesScheduleSpec | None = Field(
        default=None,
        description="[schedule.changes]: when changes runs start (stored as a changes schedule).",
    )


def make_schedule_spec(
    cron: str,
    timezone: str,
    concurrency: str = "forbid",
    starting_deadline_s: int = DEFAULT_STARTING_DEADLINE_S,
    grace_s: int = DEFAULT_GRACE_S,
) -> TimingSpec:
    """A validated schedule from command-line values (for either mode).

    Raises:
        ScheduleInvalid: A value is invalid; the message names which and why.
    """
    try:
        return TimingSpec(
            cron=cron,
            timezone=timezone,
            concurrency=concurrency,  # type: ignore[arg-type]  # validated by pydantic
            starting_deadline_s=starting_deadline_s,
            grace_s=grace_s,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
        )
        raise ScheduleInvalid(f"schedule is invalid: {problems}") from None
