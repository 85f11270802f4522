"""patch_with_retries: records refused for a lock are sent again, alone, with growing waits, at least 3 times."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from worker.crm.port import CrmRecord, WriteResult
from worker.crm.write_retry import RetryPolicy, patch_with_retries

LOCKED = WriteResult("", False, "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")


class LockingOrg:
    """Refuses each record with UNABLE_TO_LOCK_ROW the number of times given, then accepts it."""

    def __init__(self, locks: dict[str, int]) -> None:
        self.locks = dict(locks)
        self.sent: list[list[str]] = []

    def patch(self, records: Sequence[CrmRecord]) -> list[WriteResult]:
        self.sent.append([str(record["Id"]) for record in records])
        results = []
        for record in records:
            record_id = str(record["Id"])
            if self.locks.get(record_id, 0) > 0:
                self.locks[record_id] -= 1
                results.append(WriteResult(record_id, False, LOCKED.error_code, LOCKED.message))
            else:
                results.append(WriteResult(record_id, True))
        return results


def records(*ids: str) -> list[CrmRecord]:
    return [{"Id": record_id, "Name": "x"} for record_id in ids]


def test_only_the_locked_records_are_sent_again_with_growing_waits() -> None:
    org, waits = LockingOrg({"b": 1, "c": 2}), list[float]()
    policy = RetryPolicy(attempts=4, base_s=1.0, max_s=10.0)

    results = patch_with_retries(records("a", "b", "c"), org.patch, policy, sleep=waits.append)

    assert [r.success for r in results] == [True, True, True]
    assert org.sent == [["a", "b", "c"], ["b", "c"], ["c"]]
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0


def test_a_record_locked_every_time_fails_after_the_last_attempt() -> None:
    org, waits = LockingOrg({"a": 99}), list[float]()

    (result,) = patch_with_retries(records("a"), org.patch, RetryPolicy(attempts=3), sleep=waits.append)

    assert (result.success, result.error_code) == (False, "UNABLE_TO_LOCK_ROW")
    assert org.sent == [["a"], ["a"], ["a"]] and len(waits) == 2


def test_other_failures_are_not_retried() -> None:
    def refuse(batch: Sequence[CrmRecord]) -> list[WriteResult]:
        sent.append(len(batch))
        return [WriteResult(str(r["Id"]), False, "FIELD_CUSTOM_VALIDATION_EXCEPTION", "rule") for r in batch]

    sent: list[int] = []
    results = patch_with_retries(records("a", "b"), refuse, sleep=lambda _s: None)
    assert sent == [2] and {r.error_code for r in results} == {"FIELD_CUSTOM_VALIDATION_EXCEPTION"}


def test_waits_are_capped_and_fewer_than_three_attempts_are_refused() -> None:
    assert RetryPolicy(attempts=8, base_s=1.0, max_s=3.0).delay_s(6) <= 3.0
    with pytest.raises(ValueError, match="at least 3"):
        RetryPolicy(attempts=2)
