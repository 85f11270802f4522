"""No wasted registry calls: an org number shared by Accounts in different chunks is fetched once per run.

Real planner and chunk syncs with the real clients against the TLS sandbox, chunks of 10 synced on 4 threads at
once (so chunks race for the same numbers), shared state in Redis as in a cluster.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.integration.inprocess_runs import (
    ListDispatcher,
    install_connection,
    registry_numbers,
    start_run,
    sync_all,
    use_world,
    view,
)
from worker.errors import InvalidOrgNumber, RegistryTransientError
from worker.ledger.db import session_scope
from worker.ledger.models import Chunk
from worker.orgnr import normalise
from worker.sandbox.stack import Stack, sandbox_stack

pytestmark = pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)

N_ACCOUNTS = 240


def _org_numbers_in_several_chunks(stack: Stack, run_id: int) -> int:
    accounts = {a["Id"]: a for a in stack.dataset.accounts}
    chunks_of: dict[str, set[int]] = {}
    with session_scope() as session:
        for chunk in session.execute(select(Chunk).where(Chunk.run_id == run_id)).scalars():
            for record_id in chunk.record_ids:
                account = accounts[record_id]
                try:
                    org = normalise(account["BillingCountryCode"], account["Org_Number__c"])
                except InvalidOrgNumber:
                    continue
                chunks_of.setdefault(org, set()).add(chunk.seq)
    return sum(1 for seqs in chunks_of.values() if len(seqs) > 1)


@pytest.mark.parametrize("provider", ["proff", "brreg"])
def test_shared_org_numbers_cost_one_registry_call_per_run(
    env: object, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    countries = ("NO", "SE", "DK") if provider == "proff" else ("NO",)
    with sandbox_stack(
        tmp_path, N_ACCOUNTS, countries=countries, duplicate_share=0.3, stale_share=0.2
    ) as stack:
        use_world(monkeypatch, stack, redis_url)
        stack.registry.latency_s = 0.005
        data = stack.spec_data("dedup", provider, requests_per_second=1000, burst=50)
        data["sync"] = {"chunk_size": 10}
        connection_id = install_connection(stack, data)
        dispatch = ListDispatcher()
        run_id = start_run(connection_id, dispatch)
        assert set(sync_all(dispatch.take_chunks(), threads=4)) == {"done"}
        run = view(run_id)
        truth = stack.truth(stack.spec("dedup", provider))
        requests = stack.registry.requests
        batches = [r for r in requests if "organisasjonsnummer" in r.query]
        in_batches = Counter(registry_numbers(batches))
        one_by_one = Counter(registry_numbers([r for r in requests if r not in batches]))
        shared = _org_numbers_in_several_chunks(stack, run_id)

    assert shared >= 10, "the dataset must put shared org numbers into different chunks"
    # Within one run each number is asked at most once in a batch and at most once on its own (brreg asks the
    # numbers its batch leaves out, deleted or unknown units, one by one: part of the same lookup).
    for asked in (in_batches, one_by_one):
        assert max(asked.values(), default=1) == 1, [number for number, times in asked.items() if times > 1]
    assert len(set(in_batches) | set(one_by_one)) == truth.unique_valid_org_numbers
    assert run["registry_calls"] == len(requests)
    if provider == "proff":
        assert len(requests) == truth.unique_valid_org_numbers  # one GET per unique number
    else:
        assert batches and len(requests) < truth.unique_valid_org_numbers / 2  # the batch lookup is used
    for key in ("planned", "invalid", "unchanged", "updated", "failed"):
        assert run[key] == getattr(truth, key), key


def test_registry_calls_of_a_failed_attempt_count_too(
    env: object, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGSYNC_REGISTRY_MAX_RETRIES", "1")
    with sandbox_stack(tmp_path, 40, invalid_share=0.0) as stack:
        use_world(monkeypatch, stack, redis_url)
        connection_id = install_connection(
            stack, stack.spec_data("exact", requests_per_second=1000, burst=50)
        )
        dispatch = ListDispatcher()
        run_id = start_run(connection_id, dispatch)
        [chunk_id] = dispatch.take_chunks()
        broken = stack.dataset.companies[3].org_number
        stack.registry.fail_with(broken, 503)
        with pytest.raises(RegistryTransientError):
            sync_all([chunk_id])  # released for a retry after 2 attempts at the broken number
        failed_attempt = len(stack.registry.requests)
        stack.registry.fail_with(broken, None)
        assert sync_all([chunk_id]) == ["done"]
        run = view(run_id)
        sent = len(stack.registry.requests)

    assert failed_attempt >= 2
    # Every request the registry received is counted, the failed attempt's included. (That attempt's good answers
    # are not cached: a provider's lookup_many is all-or-nothing, so the retry asks for them again.)
    unique = stack.truth(stack.spec("exact")).unique_valid_org_numbers
    assert run["registry_calls"] == sent == failed_attempt + unique
