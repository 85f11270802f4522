"""The cluster-wide GCRA limiter against a real Redis: rate, burst, shared penalties, key hygiene, failures."""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import cast

import pytest
import redis

from config.settings import Settings
from worker.connections.spec import RegistrySpec
from worker.errors import RegistryTransientError, SharedStateUnavailable, TransientError
from worker.infra.shared_state import redis_client
from worker.ratelimit.redis import RedisRateLimiter, limiter_key, redis_limiter, window_cap

TOKEN = "proff-token-0123456789abcdef"
RATE, BURST = 100.0, 5
SPEC = RegistrySpec(provider="proff", base_url="https://registry.example", requests_per_second=100, burst=5)


def max_in_window(times: list[float], window_s: float = 1.0) -> int:
    """The most events in any half-open window [t, t + window_s) starting at an event."""
    times = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def _grant_times(url: str, key: str, count: int, out: multiprocessing.Queue[list[float]]) -> None:
    limiter = RedisRateLimiter(redis.Redis.from_url(url), key, RATE, BURST)
    times: list[float] = []
    for _ in range(count):
        limiter.acquire()
        times.append(time.time())
    out.put(times)


def test_three_processes_share_one_rate_and_burst(redis_url: str) -> None:
    rate, burst, per_process = RATE, BURST, 70
    key = limiter_key(SPEC, TOKEN)
    out: multiprocessing.Queue[list[float]] = multiprocessing.get_context("fork").Queue()
    procs = [
        multiprocessing.get_context("fork").Process(
            target=_grant_times, args=(redis_url, key, per_process, out)
        )
        for _ in range(3)
    ]
    for proc in procs:
        proc.start()
    times = [t for _ in procs for t in out.get(timeout=30)]
    for proc in procs:
        proc.join(timeout=10)
    assert len(times) == 3 * per_process
    # GCRA: at most burst + rate·T in any window of T seconds; 5% for the time a grant takes to reach its process.
    assert max_in_window(times) <= (burst + rate) * 1.05
    span = max(times) - min(times)
    expected = (len(times) - burst) / rate
    assert expected * 0.95 <= span <= expected * 1.25 + 0.2, (span, expected)


def test_burst_goes_at_once_then_requests_are_spaced(redis_url: str) -> None:
    limiter = RedisRateLimiter(redis.Redis.from_url(redis_url), limiter_key(SPEC, TOKEN), 10, 4)
    started = time.monotonic()
    for _ in range(4):
        limiter.acquire()
    burst_s = time.monotonic() - started
    limiter.acquire()
    limiter.acquire()
    sixth_s = time.monotonic() - started
    assert burst_s < 0.15  # evenly spaced, four requests would take 300 ms
    assert 0.19 <= sixth_s <= 0.35  # then one every 100 ms: the sixth 200 ms after the first


def test_a_burst_is_spent_within_the_seconds_limit_not_on_top_of_it(redis_url: str) -> None:
    # 10 req/s less 2% headroom, rounded up within the rate: at most 10 in any second, burst included. GCRA
    # alone lets the burst of 5 go and then paces on at 9.8/s: 14 requests in the first second, 4 too many.
    limiter = RedisRateLimiter(redis.Redis.from_url(redis_url), limiter_key(SPEC, TOKEN), 10, 5)
    assert limiter.window_cap == 10
    times: list[float] = []
    for _ in range(14):
        limiter.acquire()
        times.append(time.monotonic())
    assert times[4] - times[0] < 0.15  # the burst still goes at once
    # 20 ms less than a second: the local stamps are taken after Redis's grant and may jitter.
    assert max_in_window(times, window_s=0.98) <= 10
    assert times[-1] - times[0] < 1.6  # and the pace does not drop: 10 in the first second, then 9.8/s


def test_window_cap_is_the_rate_less_headroom_burst_included() -> None:
    assert window_cap(200, 5) == 196
    assert window_cap(10, 2) == 10  # 9.8 rounded up, never above the rate itself
    assert window_cap(10, 10) == 10  # a burst larger than the second's share still goes at once
    assert window_cap(0.5, 1) == 1


def test_the_chunks_of_one_process_have_one_asker(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    first, second = (redis_limiter(client, SPEC, TOKEN) for _ in range(2))
    other = redis_limiter(client, SPEC, TOKEN + "x")
    assert first._one_asker is second._one_asker
    assert other._one_asker is not first._one_asker


def test_waiting_for_the_asker_counts_against_max_wait(redis_url: str) -> None:
    key = limiter_key(SPEC, TOKEN)
    stuck = RedisRateLimiter(redis.Redis.from_url(redis_url), key, 100, 5)
    waiting = RedisRateLimiter(redis.Redis.from_url(redis_url), key, 100, 5, max_wait_s=0.2)
    with stuck._one_asker, pytest.raises(RegistryTransientError, match="other chunks of this process"):
        waiting.acquire()  # a chunk stuck asking for 60 s must not hold this one past its own limit
    waiting.acquire()  # once the asker is free, the token is there at once


def test_the_grant_list_keeps_more_than_one_caps_worth(redis_url: str) -> None:
    """Mid-deploy, processes with different caps share the list: none may trim it below another's cap."""
    client = redis.Redis.from_url(redis_url)
    small = RedisRateLimiter(client, limiter_key(SPEC, TOKEN), 10, 2)
    assert small.window_cap == 10
    for _ in range(12):  # about 1.2 s at 9.8 req/s
        small.acquire()
    (sent,) = [k for k in cast(list[bytes], client.keys("*")) if k.endswith(b":sent")]
    assert client.llen(sent) == 12  # not trimmed to this process's cap of 10


def test_threads_of_one_process_share_the_rate(redis_url: str) -> None:
    limiter = redis_limiter(redis.Redis.from_url(redis_url), SPEC.model_copy(update={"burst": 1}), TOKEN)
    times: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(20):
            limiter.acquire()
            with lock:
                times.append(time.time())

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    gaps = [b - a for a, b in zip(sorted(times), sorted(times)[1:], strict=False)]
    assert len(times) == 60
    assert sum(gaps) / len(gaps) >= 0.0095  # 100 req/s → 10 ms apart on average
    assert max_in_window(times) <= 101


def test_a_penalty_seen_by_one_worker_stops_the_others(redis_url: str) -> None:
    key = limiter_key(SPEC, TOKEN)
    seen_429 = RedisRateLimiter(redis.Redis.from_url(redis_url), key, 50, 10)
    other = RedisRateLimiter(redis.Redis.from_url(redis_url), key, 50, 10)
    other.acquire()
    started = time.monotonic()
    seen_429.penalise(0.5)
    other.acquire()
    waited = time.monotonic() - started
    for _ in range(10):
        other.acquire()
    eleventh = time.monotonic() - started
    assert 0.45 <= waited <= 0.75
    # No burst when the penalty ends (the bucket refills from empty): 10 more take 10 × 20 ms, not 0.
    assert 0.68 <= eleventh <= 1.1


def test_a_long_retry_after_gives_the_chunk_back_instead_of_sleeping(redis_url: str) -> None:
    sleeps: list[float] = []
    limiter = RedisRateLimiter(
        redis.Redis.from_url(redis_url), limiter_key(SPEC, TOKEN), 100, 5, max_wait_s=10, sleep=sleeps.append
    )
    limiter.penalise(120)
    with pytest.raises(RegistryTransientError) as caught:
        limiter.acquire()
    assert sleeps == []
    assert caught.value.retry_after is not None and caught.value.retry_after > 100


def test_keys_are_named_by_a_hash_never_the_token(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = redis_limiter(client, SPEC, TOKEN)
    limiter.acquire()
    limiter.penalise(0.01)
    keys = [key.decode() for key in cast(list[bytes], client.keys("*"))]
    values = [
        value
        for key in keys
        for value in (client.lrange(key, 0, -1) if client.type(key) == b"list" else [client.get(key) or b""])
    ]
    assert {key.rsplit(":", 1)[1] for key in keys} == {"tat", "blocked", "sent"}
    assert keys and all(key.startswith("regsync:ratelimit:{") for key in keys)
    assert not any(TOKEN in key or TOKEN[-12:] in key for key in keys)
    assert not any(TOKEN.encode() in value for value in values)
    other_token = limiter_key(SPEC, TOKEN + "x")
    assert other_token != limiter.key  # another token, another bucket


def test_the_schedule_runs_on_redis_time(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = RedisRateLimiter(client, limiter_key(SPEC, TOKEN), 100, 1)
    limiter.acquire()
    seconds, micros = client.time()
    tat = int(client.get(f"{limiter.key}:tat") or 0)
    assert abs(tat - (seconds * 1_000_000 + micros)) < 50_000  # within 50 ms of the server's clock


def test_unreachable_redis_is_a_transient_error_never_unlimited() -> None:
    client = redis_client(Settings(redis_url="redis://127.0.0.1:1/0"))
    limiter = RedisRateLimiter(client, limiter_key(SPEC, TOKEN), 100, 5)
    started = time.monotonic()
    with pytest.raises(SharedStateUnavailable) as caught:
        limiter.acquire()
    assert isinstance(caught.value, TransientError)
    assert "REGSYNC_REDIS_URL" in caught.value.message
    assert time.monotonic() - started < 3  # fails fast: the chunk goes back to the queue
    with pytest.raises(SharedStateUnavailable):
        limiter.penalise(1)
