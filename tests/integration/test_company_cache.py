"""The per-run company cache on real Redis: claims, expiry, hand-over between attempts, concurrent chunks."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from unittest import mock

import pytest
import redis

from config.settings import Settings
from worker.company import Company, CompanyKey, CompanyStatus, LookupResult
from worker.errors import AttemptSuperseded, RunClosed
from worker.sync.company_cache import lookup_once
from worker.sync.company_cache_stores import LocalCompanyCache, RedisCompanyCache
from worker.sync.run_closed import closed_key
from worker.sync.send_tally import SendTally, retire

KEYS = [CompanyKey("NO", f"9{i:08d}") for i in range(40)]


class CountingRegistry:
    """A registry port that answers every key, slowly, and counts what it was asked."""

    def __init__(self, latency_s: float = 0.01, failing: Sequence[CompanyKey] = ()) -> None:
        self.asked: Counter[CompanyKey] = Counter()
        self.calls = 0
        self.latency_s = latency_s
        self.failing = set(failing)
        self._lock = threading.Lock()

    def lookup_many(self, keys: Sequence[CompanyKey]) -> dict[CompanyKey, LookupResult]:
        time.sleep(self.latency_s * len(keys))
        with self._lock:
            self.asked.update(keys)
            self.calls += len(keys)
        return {
            key: LookupResult(key, error_code="REGISTRY_MALFORMED", error_message="bad")
            if key in self.failing
            else LookupResult(
                key, Company(org_number=key.org_number, country="NO", name=f"Co {key.org_number}")
            )
            for key in keys
        }

    def close(self) -> None:
        pass


@pytest.fixture(params=["redis", "local"])
def cache_factory(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    if request.param == "local":
        shared = LocalCompanyCache()
        return lambda: shared
    url = str(request.getfixturevalue("redis_url"))
    return lambda: RedisCompanyCache(redis.Redis.from_url(url), "7-1700000000000000")


def test_overlapping_chunks_fetch_each_key_once(cache_factory) -> None:  # type: ignore[no-untyped-def]
    registry = CountingRegistry()
    results: dict[int, dict[CompanyKey, LookupResult]] = {}

    def chunk(n: int) -> None:
        keys = KEYS[n * 5 : n * 5 + 20]  # every chunk shares 15 keys with its neighbours
        results[n] = lookup_once(cache_factory(), registry, keys, f"{n}:1")

    threads = [threading.Thread(target=chunk, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(registry.asked.values()) == 1
    assert set(registry.asked) == set(KEYS[:40])
    for n, got in results.items():
        assert set(got) == set(KEYS[n * 5 : n * 5 + 20])
        assert all(
            result.company and result.company.name == f"Co {key.org_number}" for key, result in got.items()
        )


def test_a_failed_lookup_is_not_cached_and_others_ask_themselves(cache_factory) -> None:  # type: ignore[no-untyped-def]
    registry = CountingRegistry(failing=[KEYS[0]])
    first = lookup_once(cache_factory(), registry, KEYS[:3], "1:1")
    second = lookup_once(cache_factory(), registry, KEYS[:3], "2:1")
    assert first[KEYS[0]].error_code == second[KEYS[0]].error_code == "REGISTRY_MALFORMED"
    assert registry.asked == Counter({KEYS[0]: 2, KEYS[1]: 1, KEYS[2]: 1})


def test_a_dead_chunks_claim_expires_and_its_retry_inherits_it(cache_factory) -> None:  # type: ignore[no-untyped-def]
    cache = cache_factory()
    assert cache.claim(KEYS[:2], "1:1", ttl_s=0.3) == KEYS[:2]  # chunk 1 claims, then dies
    assert cache.claim(KEYS[:2], "2:1", ttl_s=0.3) == []  # another chunk must wait
    assert cache.claim(KEYS[:2], "1:2", ttl_s=0.3) == KEYS[:2]  # chunk 1's retry takes its keys back
    time.sleep(0.35)
    assert cache.claim(KEYS[:1], "3:1", ttl_s=5) == KEYS[:1]  # expired: anyone may take it
    cache.put_many(
        {KEYS[0]: Company(org_number=KEYS[0].org_number, country="NO", status=CompanyStatus.DELETED)}, "3:1"
    )
    assert cache.claim(KEYS[:1], "4:1", ttl_s=5) == []  # cached: nothing to claim
    assert cache.get_many(KEYS[:2])[KEYS[0]].status is CompanyStatus.DELETED


def test_dropping_a_run_forgets_its_companies(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    cache = RedisCompanyCache(client, "9-1")
    lookup_once(cache, CountingRegistry(), KEYS[:3], "1:1")
    assert client.keys("regsync:run:{9-1}:*")
    cache.drop()
    assert client.keys("regsync:run:*") == [b"regsync:run:{9-1}:closed"]  # the closed mark: no data in it
    assert client.get("regsync:run:{9-1}:closed") == b"1"


@pytest.mark.parametrize("where", ["redis", "local"])
def test_a_closed_runs_cache_grants_no_claim_and_keeps_nothing(where: str, redis_url: str) -> None:
    """An attempt still at work when its run closed (the pump, a chunk taken over) fetches and stores nothing."""
    client = redis.Redis.from_url(redis_url)
    cache = RedisCompanyCache(client, "9-2") if where == "redis" else LocalCompanyCache()
    assert cache.claim(KEYS[:2], "pump:1", ttl_s=5) == KEYS[:2]  # claimed before the close, answered after it
    cache.drop()
    cache.put_many({KEYS[0]: Company(org_number=KEYS[0].org_number, country="NO")}, "pump:1")
    with pytest.raises(RunClosed):
        cache.claim(KEYS[2:4], "1:1", ttl_s=5)
    registry = CountingRegistry()
    with pytest.raises(RunClosed):
        lookup_once(cache, registry, KEYS[2:4], "1:1")
    assert registry.calls == 0 and cache.get_many(KEYS[:4]) == {}
    if where == "redis":
        assert client.keys("regsync:run:{9-2}:*") == [b"regsync:run:{9-2}:closed"]


def test_a_retired_attempt_is_counted_once_and_sends_nothing_more(redis_url: str) -> None:
    """A chunk attempt (or pump) whose lease ran out was only slow: once another took its work over and counted its
    calls, its next request is refused, so nothing it sends goes uncounted."""
    settings = Settings(shared_state="redis", redis_url=redis_url)
    client = redis.Redis.from_url(redis_url)
    client.delete("regsync:run:{9-4}:sends", closed_key("9-4"))
    slow, other = SendTally(client, "9-4", "7:1"), SendTally(client, "9-4", "8:1")
    for _ in range(3):
        slow()
    other()
    assert retire(settings, "9-4", 7, 1) == 3
    with pytest.raises(AttemptSuperseded):
        slow()  # woke up after the takeover: refused, not sent
    other()  # another attempt of the run goes on
    assert retire(settings, "9-4", 7, 1) == 3  # a second reader (a retried sweep) counts the same
    assert retire(settings, "9-4", 8, 1) == 2
    assert retire(settings, "9-4", 9, 1) == 0  # an attempt that sent nothing


def test_a_closed_runs_requests_are_refused_before_they_are_sent_and_not_counted(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete(closed_key("9-3"), "regsync:run:{9-3}:sends")
    tally = SendTally(client, "9-3", "pump:1")
    tally()
    tally()
    client.set(closed_key("9-3"), b"1")  # what the closing chunk does before it reads the tallies
    with pytest.raises(RunClosed):
        tally()
    assert client.hget("regsync:run:{9-3}:sends", "pump:1") == b"2"


def test_a_chunk_waiting_for_another_keeps_its_own_lease_alive() -> None:
    cache = LocalCompanyCache()
    assert cache.claim(KEYS[:1], "1:1", ttl_s=60) == KEYS[:1]  # chunk 1 is fetching KEYS[0], slowly
    clock = {"now": 0.0}
    beats: list[float] = []

    def sleep(seconds: float) -> None:
        clock["now"] += seconds
        if clock["now"] > 25:
            cache.put_many({KEYS[0]: Company(org_number=KEYS[0].org_number, country="NO")}, "1:1")

    with mock.patch("worker.sync.company_cache.time.monotonic", lambda: clock["now"]):
        got = lookup_once(
            cache,
            CountingRegistry(),
            KEYS[:1],
            "2:1",
            while_waiting=lambda: beats.append(clock["now"]),
            sleep=sleep,
        )
    assert got[KEYS[0]].company is not None
    assert len(beats) == 2 and beats[0] >= 10  # every 10 s of waiting, not on every poll
