"""What a due slot becomes: catch-up after downtime and the forbid / replace / allow concurrency policies."""

from __future__ import annotations

import datetime as dt

from worker.scheduling.models import Concurrency
from worker.scheduling.policy import MISSED, OVERLAP, decide

UTC = dt.UTC
NOW = dt.datetime(2026, 5, 1, 12, 0, 20, tzinfo=UTC)
HOUR = 3600


def slot(minutes_ago: float) -> dt.datetime:
    return NOW - dt.timedelta(minutes=minutes_ago)


def test_nothing_due_decides_nothing() -> None:
    assert decide([], NOW, starting_deadline_s=HOUR, policy=Concurrency.FORBID) == []


def test_a_due_slot_with_nothing_active_runs() -> None:
    (decision,) = decide([slot(0.3)], NOW, starting_deadline_s=HOUR, policy=Concurrency.FORBID)

    assert decision.run and decision.error_code is None and decision.cancel == ()


def test_after_downtime_only_the_newest_slot_runs_and_older_ones_are_missed() -> None:
    due = [slot(180), slot(120), slot(60), slot(0.3)]

    decisions = decide(due, NOW, starting_deadline_s=HOUR, policy=Concurrency.FORBID)

    assert [d.run for d in decisions] == [False, False, False, True]
    assert [d.error_code for d in decisions[:3]] == [MISSED] * 3
    assert all("missed" in (d.reason or "") for d in decisions[:3])
    assert [d.slot for d in decisions] == due


def test_the_newest_missed_slot_still_runs_within_the_starting_deadline() -> None:
    decisions = decide([slot(120), slot(59)], NOW, starting_deadline_s=HOUR, policy=Concurrency.FORBID)

    assert [(d.run, d.error_code) for d in decisions] == [(False, MISSED), (True, None)]


def test_a_slot_past_the_starting_deadline_is_missed_too() -> None:
    (decision,) = decide([slot(61)], NOW, starting_deadline_s=HOUR, policy=Concurrency.ALLOW)

    assert (decision.run, decision.error_code) == (False, MISSED)
    assert "starting deadline of 3600 s" in (decision.reason or "")


def test_forbid_skips_a_slot_while_a_run_is_active_and_names_it() -> None:
    (decision,) = decide(
        [slot(0.3)], NOW, starting_deadline_s=HOUR, policy=Concurrency.FORBID, active_run_ids=[7]
    )

    assert (decision.run, decision.error_code) == (False, OVERLAP)
    assert "run 7" in (decision.reason or "") and "forbid" in (decision.reason or "")


def test_replace_starts_the_slot_and_cancels_the_active_runs() -> None:
    (decision,) = decide(
        [slot(0.3)], NOW, starting_deadline_s=HOUR, policy=Concurrency.REPLACE, active_run_ids=[7, 9]
    )

    assert decision.run and decision.cancel == (7, 9)


def test_allow_starts_the_slot_alongside_the_active_run() -> None:
    (decision,) = decide(
        [slot(0.3)], NOW, starting_deadline_s=HOUR, policy=Concurrency.ALLOW, active_run_ids=[7]
    )

    assert decision.run and decision.cancel == ()


def test_missed_slots_are_recorded_whatever_the_concurrency_policy() -> None:
    for policy in Concurrency:
        decisions = decide(
            [slot(30), slot(0.3)], NOW, starting_deadline_s=HOUR, policy=policy, active_run_ids=[7]
        )

        assert decisions[0].error_code == MISSED and not decisions[0].run
