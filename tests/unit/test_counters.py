"""One type for the run counters: the ledger's columns, the views, the CLI summary and the API schema follow
``worker.ledger.counters.Counts``, so that a new counter is a field there, its column, a migration and the code
that counts it. These tests fail when one of those places drifts from the type."""

from __future__ import annotations

from dataclasses import fields

from worker.api.schemas import RunOut
from worker.cli.runs import SUMMARY_KEYS
from worker.ledger.counters import CALLS, COUNTERS, Counts
from worker.ledger.models import Chunk, Run, SyncCounters
from worker.ledger.views import COUNT_KEYS
from worker.registry.outcomes import RegistryNotice
from worker.sync.chunk_work import Outcome


def test_the_ledger_columns_are_the_counters_in_the_same_order() -> None:
    assert tuple(SyncCounters.__annotations__) == COUNTERS
    for model in (Run, Chunk):
        missing = [name for name in COUNTERS if name not in model.__table__.c]
        assert missing == [], f"{model.__name__} lacks counter columns {missing}"


def test_every_registry_notice_has_its_counter() -> None:
    assert {notice.counter for notice in RegistryNotice} <= set(COUNTERS)
    assert set(CALLS) <= set(COUNTERS)


def test_the_views_the_cli_and_the_api_show_every_counter() -> None:
    assert set(COUNTERS) <= set(COUNT_KEYS)
    assert set(COUNTERS) <= set(SUMMARY_KEYS)
    assert set(SUMMARY_KEYS) <= set(COUNT_KEYS) | {"not_processed"}
    missing = [key for key in COUNT_KEYS if key not in RunOut.model_fields]
    assert missing == [], f"api/schemas.RunOut lacks {missing}"
    for key in COUNTERS:
        assert RunOut.model_fields[key].annotation is int, key


def test_a_chunk_outcome_counts_its_notices_and_failures_in_their_own_counters() -> None:
    from worker.ledger.chunks import Failure

    outcome = Outcome(
        fetched=2,
        updated=1,
        failures=[Failure("001A", None, "RECORD_DELETED", "gone")],
        notices=[Failure("001B", "123456785", RegistryNotice.DELETED.value, "deleted")],
        registry_calls=3,
    )
    counts = outcome.counts().columns()
    assert list(counts) == list(COUNTERS)
    assert {key: value for key, value in counts.items() if value} == {
        "fetched": 2,
        "updated": 1,
        "failed": 1,
        RegistryNotice.DELETED.counter: 1,
        "registry_calls": 3,
    }
    assert [f.name for f in fields(Counts)] == list(COUNTERS)
