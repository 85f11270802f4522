"""ride_out: a ledger blip is waited for (bounded), anything else goes straight through."""

from __future__ import annotations

import pytest

from worker.errors import LedgerError, LedgerUnavailable
from worker.ledger.db import ride_out


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_blip_is_waited_for_and_told_once() -> None:
    clock, told, failures = Clock(), list[LedgerUnavailable](), iter([True, True, True, False])

    def work() -> str:
        if next(failures):
            raise LedgerUnavailable("down")
        return "done"

    result = ride_out(work, within_s=60, on_wait=told.append, sleep=clock.sleep, clock=lambda: clock.now)
    assert {"result": result, "told": len(told), "slept": clock.slept} == {
        "result": "done",
        "told": 1,
        "slept": [0.5, 1.0, 2.0],
    }


def test_an_outage_longer_than_the_bound_goes_through() -> None:
    clock = Clock()

    def work() -> None:
        raise LedgerUnavailable("down")

    with pytest.raises(LedgerUnavailable):
        ride_out(work, within_s=10, sleep=clock.sleep, clock=lambda: clock.now)
    assert clock.now <= 10


def test_a_permanent_ledger_error_is_not_retried() -> None:
    calls = []

    def work() -> None:
        calls.append(1)
        raise LedgerError("refused")

    with pytest.raises(LedgerError):
        ride_out(work, within_s=60, sleep=lambda _s: None)
    assert len(calls) == 1
