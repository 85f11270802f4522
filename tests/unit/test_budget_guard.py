"""The budget rule: regsync's daily share and the org's remaining-calls floor, with stale readings."""

from __future__ import annotations

import datetime as dt

from worker.budget.guard import CHUNK_COST, ApiReading, budget_verdict, share_cap, utc_day
from worker.connections.spec import BudgetSpec

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC).timestamp()


def test_default_budget_is_half_the_daily_limit_and_no_floor() -> None:
    budget = BudgetSpec()
    assert (budget.max_api_share, budget.stop_below_remaining) == (0.5, 0)
    assert share_cap(budget, 15_000) == 7_500


def test_share_allows_a_chunk_while_it_fits_and_pauses_when_it_would_not() -> None:
    budget = BudgetSpec(max_api_share=0.1)
    reading = ApiReading(used=500, limit=1_000, seen_at=NOW)
    assert budget_verdict(budget, 100 - CHUNK_COST, reading, NOW) is None
    reason = budget_verdict(budget, 99, reading, NOW)
    assert reason is not None and "used 99 of its 100" in reason and "midnight UTC" in reason


def test_share_uses_the_last_known_limit_even_when_the_reading_is_old() -> None:
    budget = BudgetSpec(max_api_share=0.1, recheck_after_s=60)
    old = ApiReading(used=0, limit=1_000, seen_at=NOW - 86_400)
    assert budget_verdict(budget, 100, old, NOW) is not None


def test_floor_pauses_when_a_chunk_would_take_remaining_below_it() -> None:
    budget = BudgetSpec(stop_below_remaining=1_000)
    assert budget_verdict(budget, 0, ApiReading(used=8_998, limit=10_000, seen_at=NOW), NOW) is None
    reason = budget_verdict(budget, 0, ApiReading(used=8_999, limit=10_000, seen_at=NOW), NOW)
    assert reason is not None and "only 1001 of the org's 10000" in reason and "below 1000" in reason


def test_a_stale_reading_no_longer_blocks_so_the_next_chunk_measures_again() -> None:
    budget = BudgetSpec(stop_below_remaining=1_000, recheck_after_s=900)
    exhausted = ApiReading(used=10_000, limit=10_000, seen_at=NOW - 901)
    assert budget_verdict(budget, 0, exhausted, NOW) is None
    assert budget_verdict(budget, 0, exhausted, NOW - 2) is not None


def test_without_any_reading_a_chunk_may_start() -> None:
    assert (
        budget_verdict(BudgetSpec(max_api_share=0.01, stop_below_remaining=10**6), 10**6, None, NOW) is None
    )


def test_the_budget_window_is_the_utc_day() -> None:
    late = dt.datetime(2026, 3, 1, 23, 59, 59, tzinfo=dt.UTC).timestamp()
    assert utc_day(late) == "2026-03-01"
    assert utc_day(late + 1) == "2026-03-02"
