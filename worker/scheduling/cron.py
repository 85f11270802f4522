"""Cron expressions in an IANA time zone, turned into UTC slots the way cron users expect around DST.

Slots are computed on the local wall clock (croniter on naive local times) and then placed on the UTC line:

* a wall time the clock skips (spring forward, 02:30 in Europe/Oslo on 29 March 2026) runs once, right after
  the gap (03:30 local), for schedules at fixed times; schedules that follow the clock (``*`` in the minute or
  hour field, e.g. hourly) just have fewer slots that night, as the clock has fewer hours;
* a wall time that happens twice (fall back, 02:30 on 25 October 2026) runs once, in the first pass, for fixed
  times; schedules that follow the clock run in both passes (hourly means every hour of a 25-hour night).

This is classic Vixie cron's rule, without its dependence on when the daemon happens to wake up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from worker.errors import ScheduleInvalid

ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
#: Wall times are searched this far beyond a UTC window, so that no slot is lost to a DST offset.
_CUSHION = dt.timedelta(hours=3)
#: Steps taken beyond ``limit`` when walking back: the cushion and one repeated hour of every-minute slots.
_EXTRA_STEPS = 4 * 60


def parse_cron(expression: str) -> str:
    """A normalised five-field cron expression (minute hour day-of-month month day-of-week).

    Raises:
        ScheduleInvalid: Not five fields, or croniter does not accept it.
    """
    text = " ".join(expression.split())
    text = ALIASES.get(text.lower(), text)
    if len(text.split(" ")) != 5 or not croniter.is_valid(text):
        raise ScheduleInvalid(
            f"{expression!r} is not a cron expression: give five fields, minute hour day month weekday, "
            'e.g. "0 2 * * *" for 02:00 every day'
        )
    try:
        croniter(text, dt.datetime(2000, 1, 1)).get_next(dt.datetime)
    except CroniterError:
        raise ScheduleInvalid(f"{expression!r} never fires (no such date); check day and month") from None
    return text


def parse_timezone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Oslo``, ``UTC``).

    Raises:
        ScheduleInvalid: No such zone in the tz database.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleInvalid(
            f"{name!r} is not an IANA time zone; use a name such as Europe/Oslo, Europe/Stockholm or UTC"
        ) from None


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A validated cron expression and the zone whose wall clock it reads."""

    cron: str
    timezone: str

    @classmethod
    def parse(cls, cron: str, timezone: str) -> CronSchedule:
        """Validate both parts (raises ScheduleInvalid) and normalise the expression."""
        parse_timezone(timezone)
        return cls(parse_cron(cron), timezone)

    @property
    def zone(self) -> ZoneInfo:
        return parse_timezone(self.timezone)

    @property
    def follows_clock(self) -> bool:
        """True for interval-like schedules (``*`` in minute or hour), which follow the clock through DST."""
        minute, hour = self.cron.split(" ")[:2]
        return minute.startswith("*") or hour.startswith("*")

    def instants(self, wall: dt.datetime) -> list[dt.datetime]:
        """The UTC instants at which the naive local wall time ``wall`` is a slot (zero, one or two)."""
        zone = self.zone
        first, second = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
        early, late = first.utcoffset(), second.utcoffset()
        assert early is not None and late is not None  # a ZoneInfo always has an offset
        if early == late:
            return [first.astimezone(dt.UTC)]
        if early > late:  # the repeated hour of a fall-back night
            passes = [first, second] if self.follows_clock else [first]
            return [p.astimezone(dt.UTC) for p in passes]
        # The skipped hour: fold=0 reads the wall time with the old offset, which lands just after the gap.
        return [] if self.follows_clock else [first.astimezone(dt.UTC)]

    def _wall(self, instant: dt.datetime) -> dt.datetime:
        return instant.astimezone(self.zone).replace(tzinfo=None)

    def _walls(self, start: dt.datetime, backwards: bool) -> Iterator[dt.datetime]:
        walker = croniter(self.cron, start)
        step = walker.get_prev if backwards else walker.get_next
        while True:
            yield step(dt.datetime)

    def slots_between(self, after: dt.datetime, until: dt.datetime, limit: int = 100) -> list[dt.datetime]:
        """The newest ``limit`` slots in ``(after, until]``, oldest first, as aware UTC datetimes."""
        floor = self._wall(after) - _CUSHION
        found: set[dt.datetime] = set()
        for steps, wall in enumerate(self._walls(self._wall(until) + _CUSHION, backwards=True)):
            if wall < floor or steps > limit + _EXTRA_STEPS:
                break
            found.update(i for i in self.instants(wall) if after < i <= until)
        return sorted(found)[-limit:]

    def next_slot(self, after: dt.datetime) -> dt.datetime:
        """The first slot strictly after ``after``."""
        best: dt.datetime | None = None
        for wall in self._walls(self._wall(after) - _CUSHION, backwards=False):
            if best is not None and wall > self._wall(best) + _CUSHION:
                return best
            later = [i for i in self.instants(wall) if i > after]
            if later and (best is None or min(later) < best):
                best = min(later)
        raise AssertionError("unreachable: croniter walks forever")  # pragma: no cover
