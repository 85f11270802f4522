"""Cron slots on an IANA wall clock: one slot per intended time across the 2026 DST nights in Europe/Oslo."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest

from worker.errors import ScheduleInvalid
from worker.scheduling.cron import CronSchedule, parse_cron
from worker.scheduling.tick import due_slots

OSLO = ZoneInfo("Europe/Oslo")
UTC = dt.UTC


def local_day(year: int, month: int, day: int) -> tuple[dt.datetime, dt.datetime]:
    """The local calendar day as a UTC window (start exclusive, end inclusive), 23/24/25 hours long."""
    start = dt.datetime(year, month, day, tzinfo=OSLO)
    end = start + dt.timedelta(days=1)
    end = dt.datetime(end.year, end.month, end.day, tzinfo=OSLO)  # local midnight, whatever the offset
    return start.astimezone(UTC) - dt.timedelta(microseconds=1), end.astimezone(UTC) - dt.timedelta(
        microseconds=1
    )


def walk(schedule: CronSchedule, after: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
    """Slots found one at a time with next_slot, as the tick's deadline column moves."""
    slots, cursor = [], after
    while (cursor := schedule.next_slot(cursor)) <= until:
        slots.append(cursor)
    return slots


def test_spring_forward_0230_runs_once_right_after_the_gap() -> None:
    schedule = CronSchedule.parse("30 2 * * *", "Europe/Oslo")

    slots = schedule.slots_between(*local_day(2026, 3, 29))

    assert slots == [dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC)]  # 03:30 CEST: 02:30 does not exist
    assert slots[0].astimezone(OSLO).strftime("%H:%M %Z") == "03:30 CEST"


def test_fall_back_0230_runs_once_in_the_first_pass() -> None:
    schedule = CronSchedule.parse("30 2 * * *", "Europe/Oslo")

    slots = schedule.slots_between(*local_day(2026, 10, 25))

    assert slots == [dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]  # 02:30 CEST, not again at 02:30 CET


def test_daily_slot_is_once_a_day_through_both_dst_nights() -> None:
    schedule = CronSchedule.parse("30 2 * * *", "Europe/Oslo")
    after = dt.datetime(2026, 3, 1, tzinfo=UTC)
    until = dt.datetime(2026, 11, 30, tzinfo=UTC)

    slots = schedule.slots_between(after, until, limit=1000)

    days = [slot.astimezone(OSLO).date() for slot in slots]
    assert len(slots) == (until - after).days and len(set(days)) == len(days)
    assert walk(schedule, after, until) == slots


@pytest.mark.parametrize(
    ("day", "expected_hours"),
    [((2026, 3, 29), 23), ((2026, 10, 25), 25), ((2026, 6, 1), 24)],
    ids=["spring-forward", "fall-back", "summer"],
)
def test_hourly_runs_once_per_real_hour_of_the_local_day(
    day: tuple[int, int, int], expected_hours: int
) -> None:
    schedule = CronSchedule.parse("0 * * * *", "Europe/Oslo")
    window = local_day(*day)

    slots = schedule.slots_between(*window, limit=1000)

    assert len(slots) == expected_hours
    assert all(b - a == dt.timedelta(hours=1) for a, b in itertools.pairwise(slots))
    assert walk(schedule, *window) == slots


def test_fixed_time_in_the_repeated_hour_of_minute_wildcards_follows_the_clock() -> None:
    every_10 = CronSchedule.parse("*/10 2 * * *", "Europe/Oslo")
    fixed = CronSchedule.parse("0,30 2 * * *", "Europe/Oslo")

    assert len(every_10.slots_between(*local_day(2026, 10, 25))) == 12  # both passes of 02:xx
    assert len(every_10.slots_between(*local_day(2026, 3, 29))) == 0  # the clock skipped 02:xx
    assert len(fixed.slots_between(*local_day(2026, 10, 25))) == 2
    assert len(fixed.slots_between(*local_day(2026, 3, 29))) == 2  # 03:00 and 03:30 CEST


def test_due_slots_are_the_window_after_the_cursor_up_to_now() -> None:
    schedule = CronSchedule.parse("* * * * *", "UTC")
    last = dt.datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    now = dt.datetime(2026, 5, 1, 12, 3, 59, tzinfo=UTC)

    assert due_slots(schedule, last, now) == [last + dt.timedelta(minutes=m) for m in (1, 2, 3)]
    assert due_slots(schedule, last, last) == []
    assert due_slots(schedule, None, now) == []


def test_a_long_outage_yields_only_the_newest_slots() -> None:
    schedule = CronSchedule.parse("* * * * *", "UTC")
    now = dt.datetime(2026, 5, 8, tzinfo=UTC)

    slots = due_slots(schedule, now - dt.timedelta(days=7), now, limit=100)

    assert len(slots) == 100
    assert slots[-1] == now and slots[0] == now - dt.timedelta(minutes=99)


@pytest.mark.parametrize("bad", ["0 2 * *", "0 2 * * * *", "61 2 * * *", "nonsense", "0 0 30 2 *"])
def test_invalid_cron_is_refused_with_an_example(bad: str) -> None:
    with pytest.raises(ScheduleInvalid) as info:
        CronSchedule.parse(bad, "Europe/Oslo")

    assert "cron" in info.value.message or "never fires" in info.value.message


def test_unknown_zone_is_refused() -> None:
    with pytest.raises(ScheduleInvalid, match="IANA"):
        CronSchedule.parse("0 2 * * *", "Europe/Olso")


def test_aliases_and_spacing_are_normalised() -> None:
    assert parse_cron("@daily") == "0 0 * * *"
    assert parse_cron("  0   2 * *  * ") == "0 2 * * *"
