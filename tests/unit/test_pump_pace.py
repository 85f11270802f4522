"""The registry pump's requests in flight: Little's law from measured latency, within a cap."""

from __future__ import annotations

from worker.sync.pump_pace import Pace, TimedLimiter


def test_in_flight_is_rate_times_latency_with_headroom_plus_one() -> None:
    assert Pace(200, 0.05, 1.5, 64).in_flight == 16  # ceil(200 × 0.05 × 1.5) + 1
    assert (
        Pace(10, 0.05, 1.5, 64).in_flight == 2
    )  # a small token still keeps one request waiting for its slot


def test_in_flight_follows_the_latency_it_measures_not_its_guess() -> None:
    pace = Pace(200, 0.1, 1.5, 64)
    assert pace.in_flight == 31
    for _ in range(200):
        pace.observe(0.021)
    assert pace.in_flight == 8  # ceil(200 × 0.021 × 1.5) + 1


def test_in_flight_stays_within_the_cap() -> None:
    assert Pace(2000, 1.0, 1.5, 64).in_flight == 64


class _Limiter:
    def __init__(self) -> None:
        self.penalties: list[float] = []

    def acquire(self) -> None:
        return None

    def penalise(self, retry_after_s: float) -> None:
        self.penalties.append(retry_after_s)


def test_timed_limiter_remembers_each_threads_grant_and_passes_penalties_on() -> None:
    inner = _Limiter()
    limiter = TimedLimiter(inner)
    assert limiter.granted_at() is None
    limiter.acquire()
    assert limiter.granted_at() is not None
    limiter.forget()
    assert limiter.granted_at() is None
    limiter.penalise(2.0)
    assert inner.penalties == [2.0]
