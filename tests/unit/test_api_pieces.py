"""Pure pieces of the HTTP API: roles, cursors, the request throttle's windows, run progress and ETA."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from worker.api import pagination
from worker.api.progress import progress
from worker.api.throttle import MemoryThrottle
from worker.ledger.models import Run, RunStatus
from worker.roles import Role

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("role", "needed", "allowed"),
    [
        (Role.VIEWER, Role.VIEWER, True),
        (Role.VIEWER, Role.OPERATOR, False),
        (Role.OPERATOR, Role.OPERATOR, True),
        (Role.OPERATOR, Role.ADMIN, False),
        (Role.ADMIN, Role.VIEWER, True),
    ],
)
def test_each_role_includes_the_ones_before_it(role: Role, needed: Role, allowed: bool) -> None:
    assert role.allows(needed) is allowed


@pytest.mark.parametrize("last_id", [1, 42, 987_650, 2**63 - 1])
def test_cursors_round_trip_and_match_their_published_pattern(last_id: int) -> None:
    cursor = pagination.encode(last_id)
    assert re.fullmatch(pagination.PATTERN, cursor)
    assert pagination.decode(cursor) == last_id


def test_every_cursor_of_the_published_shape_decodes() -> None:
    assert pagination.decode("__________w") == 2**63 - 1  # beyond the largest id: clamped, not an error
    assert pagination.decode("AAAAAAAAAAA") == 0
    assert pagination.decode(None) is None


def test_the_throttle_refuses_over_the_window_and_says_when_to_retry() -> None:
    clock = [1_800_000_010.0]
    throttle = MemoryThrottle(2, clock=lambda: clock[0])
    assert [throttle.hit("k"), throttle.hit("k")] == [None, None]
    assert throttle.hit("k") == 50.0
    assert throttle.hit("other") is None
    clock[0] += 50.0  # the next window
    assert throttle.hit("k") is None


def _run(**values: object) -> Run:
    base: dict[str, object] = dict(
        status=RunStatus.RUNNING.value, planned=800, invalid=0, unchanged=0, updated=0, failed=0,
        chunks_total=4, chunks_done=0, planned_complete=True, started_at=NOW - dt.timedelta(minutes=4),
        finished_at=None,
    )  # fmt: skip
    return Run(**(base | values))


def test_eta_follows_the_chunk_rate_so_far() -> None:
    view = progress(_run(chunks_done=1, updated=150, invalid=50), NOW)
    assert (view["percent"], view["records_done"], view["eta_s"]) == (25.0, 200, 720.0)
    assert view["eta_at"] == NOW + dt.timedelta(minutes=12)


@pytest.mark.parametrize(
    "values", [{"chunks_done": 0}, {"planned_complete": False, "chunks_done": 2}, {"started_at": None}]
)
def test_no_eta_before_a_chunk_is_done_or_while_planning(values: dict[str, object]) -> None:
    view = progress(_run(**values), NOW)
    assert view["eta_s"] is None and view["eta_at"] is None


def test_a_finished_run_is_complete() -> None:
    view = progress(_run(status=RunStatus.SUCCEEDED.value, chunks_done=4, finished_at=NOW), NOW)
    assert (view["percent"], view["eta_s"], view["eta_at"]) == (100.0, 0.0, NOW)
