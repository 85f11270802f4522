"""The call arithmetic behind `--estimate`."""

from __future__ import annotations

from typing import Any

import pytest

from worker.backfill.estimate import run_bounds


def test_issue_lower_bound_for_twenty_thousand_accounts() -> None:
    # The run-start check (5) + ceil(N/2000) query pages + one read per 200 + at most one write per 200 (5%
    # changed touches every chunk), each after at most one describe.
    assert run_bounds(20_000, 19_000, 0.05, 200) == (19_000, 5 + 10 + 100 + 2 * 100)


def test_unchanged_records_cost_no_write_and_invalid_ones_no_registry_call() -> None:
    calls = run_bounds(1_000, 900, 0.0, 200, n_valid=950)
    assert calls.registry_calls == 900
    assert calls.crm_calls == 5 + 1 + 5  # the run-start check, one query page, five reads, no write


def test_few_changes_cost_at_most_one_write_each() -> None:
    assert run_bounds(4_000, 4_000, 0.0005, 200).crm_calls == 5 + 2 + 20 + 2 * 2


def test_brreg_batches_a_chunks_numbers() -> None:
    assert run_bounds(20_000, 20_000, 0.0, 200, registry_batch=100).registry_calls == 200
    assert run_bounds(10, 3, 0.0, 200, registry_batch=100).registry_calls == 1


def test_an_empty_object_still_costs_one_query() -> None:
    assert run_bounds(0, 0, 0.0, 200) == (0, 5 + 1)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((10, 11, 0.1, 200), {}), ((10, 5, 1.5, 200), {}), ((10, 5, 0.1, 0), {}), ((-1, 0, 0.1, 200), {})],
)
def test_nonsense_is_refused(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        run_bounds(*args, **kwargs)
