"""Typed outcomes: what a chunk, a planner and a notice return is an enum, and the metrics' help text and the
evaluator's tallies are built from it."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from worker.alerts.evaluator import EvaluateReport, tally
from worker.alerts.notify import NoticeOutcome
from worker.infra.metrics import CHUNK_SECONDS, RETRY, timed_chunk
from worker.sync.outcomes import ChunkOutcome


def _count(outcome: str) -> float:
    value = REGISTRY.get_sample_value("regsync_chunk_duration_seconds_count", {"outcome": outcome})
    return value or 0.0


def test_the_chunk_metric_names_every_outcome_in_its_help() -> None:
    for outcome in [*ChunkOutcome, RETRY]:
        assert outcome in CHUNK_SECONDS._documentation


def test_timed_chunk_labels_the_returned_outcome_or_retry_when_it_raises() -> None:
    done, retry = _count("done"), _count(RETRY)
    assert timed_chunk(lambda: ChunkOutcome.DONE) is ChunkOutcome.DONE

    def boom() -> ChunkOutcome:
        raise RuntimeError("transient")

    with pytest.raises(RuntimeError):
        timed_chunk(boom)
    assert (_count("done") - done, _count(RETRY) - retry) == (1, 1)


#: Each outcome's counter in the evaluator's report; None: it sent nothing and counts nowhere.
TALLIES: dict[NoticeOutcome, str | None] = {
    NoticeOutcome.NOTIFIED: "notified",
    NoticeOutcome.ESCALATED: "escalated",
    NoticeOutcome.RECOVERED: "recovered",
    NoticeOutcome.FAILED: "failed",
    NoticeOutcome.NOT_CLAIMED: None,
    NoticeOutcome.NO_CHANNELS: None,
    NoticeOutcome.POLICY_EXHAUSTED: None,
}


def test_every_notice_outcome_has_its_tally() -> None:
    assert set(TALLIES) == set(NoticeOutcome)


@pytest.mark.parametrize(("outcome", "counter"), list(TALLIES.items()))
def test_the_evaluator_tallies_each_notice_outcome_in_its_own_counter(
    outcome: NoticeOutcome, counter: str | None
) -> None:
    report = EvaluateReport()
    tally(report, outcome)
    counted = {name: value for name, value in report.as_dict().items() if value}
    assert counted == ({counter: 1} if counter else {})
