"""Retrying the records of an sObject Collections PATCH that Salesforce refused for a passing reason.

``UNABLE_TO_LOCK_ROW`` (PROTOCOLS.md 3.4, retry: yes) means another transaction held the row: the same
write a moment later usually succeeds. Only the records that failed so are sent again, with exponential
backoff and jitter, so that two writers competing for one parent record do not collide in step.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from worker.crm.port import CrmRecord, WriteResult

log = logging.getLogger(__name__)

#: Per-record codes worth another attempt (PROTOCOLS.md 3.4 marks only this one as retryable).
RETRYABLE_RECORD_CODES = frozenset({"UNABLE_TO_LOCK_ROW"})

Patch = Callable[[Sequence[CrmRecord]], list[WriteResult]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a refused record is sent again.

    Attributes:
        attempts: Sends of one record at most, the first one included (at least 3).
        base_s: Wait before the second send, in seconds; it doubles for each further send.
        max_s: Longest wait between two sends, in seconds.
    """

    attempts: int = 4
    base_s: float = 0.5
    max_s: float = 4.0

    def __post_init__(self) -> None:
        if self.attempts < 3:
            raise ValueError("a locked record is sent at least 3 times before it fails")

    def delay_s(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1 = the second send), with jitter of up to a half."""
        ceiling = min(self.max_s, self.base_s * 2.0 ** (retry - 1))
        return ceiling * random.uniform(0.5, 1.0)


DEFAULT_POLICY = RetryPolicy()


def is_retryable(result: WriteResult) -> bool:
    return not result.success and result.error_code in RETRYABLE_RECORD_CODES


def patch_with_retries(
    records: Sequence[CrmRecord],
    patch: Patch,
    policy: RetryPolicy = DEFAULT_POLICY,
    sleep: Callable[[float], None] = time.sleep,
) -> list[WriteResult]:
    """``patch(records)``, then again for the records refused with a retryable code, up to ``policy.attempts``.

    Returns:
        One result per record, in order: the last answer Salesforce gave for it.
    """
    results = patch(records)
    for retry in range(1, policy.attempts):
        again = [position for position, result in enumerate(results) if is_retryable(result)]
        if not again:
            break
        log.info(
            "Salesforce refused %d of %d record(s) for a lock; retry %d", len(again), len(records), retry
        )
        sleep(policy.delay_s(retry))
        for position, result in zip(again, patch([records[i] for i in again]), strict=True):
            results[position] = result
    return results
