"""Request rates from a sandbox server's request log (arrival timestamps): steady rate and 1-second peaks."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

#: Share of requests left out at each end of the run: the ramp-up while planning starts, and the tail where
#: the last chunk finishes alone. What remains is the "steady part" the throughput target is about.
TRIM_SHARE = 0.05


@dataclass(frozen=True, slots=True)
class RateStats:
    requests: int
    span_s: float
    overall_rps: float
    steady_rps: float
    steady_span_s: float
    peak_sliding_1s: int
    peak_aligned_1s: int


def steady_rate(times: Sequence[float], trim: float = TRIM_SHARE) -> tuple[float, float]:
    """(requests per second, window length) between the ``trim`` and ``1 - trim`` quantiles of arrival."""
    ordered = sorted(times)
    if len(ordered) < 3:
        return 0.0, 0.0
    first = int(len(ordered) * trim)
    last = max(first + 1, math.ceil(len(ordered) * (1 - trim)) - 1)
    span = ordered[last] - ordered[first]
    return ((last - first) / span if span > 0 else 0.0), span


def peak_sliding(times: Sequence[float], window_s: float = 1.0) -> int:
    """The most requests that arrived within any ``window_s`` interval [t, t + window_s)."""
    ordered = sorted(times)
    best = 0
    for index, start in enumerate(ordered):
        best = max(best, bisect_right(ordered, start + window_s - 1e-9) - index)
    return best


def peak_aligned(times: Sequence[float]) -> int:
    """The most requests in one wall-clock second (what the sandbox's fixed-window limiter counts)."""
    buckets = Counter(int(t) for t in times)
    return max(buckets.values(), default=0)


def rate_stats(times: Sequence[float]) -> RateStats:
    ordered = sorted(times)
    span = ordered[-1] - ordered[0] if len(ordered) > 1 else 0.0
    steady, steady_span = steady_rate(ordered)
    return RateStats(
        requests=len(ordered),
        span_s=span,
        overall_rps=(len(ordered) - 1) / span if span > 0 else 0.0,
        steady_rps=steady,
        steady_span_s=steady_span,
        peak_sliding_1s=peak_sliding(ordered),
        peak_aligned_1s=peak_aligned(ordered),
    )


def silences(
    times: Sequence[float], longer_than_s: float = 0.25, trim: float = TRIM_SHARE
) -> tuple[int, float]:
    """(count, total seconds) of pauses between consecutive requests longer than ``longer_than_s``, in the
    steady part: time in which no worker process had a registry request to send."""
    ordered = sorted(times)
    first, last = int(len(ordered) * trim), max(0, math.ceil(len(ordered) * (1 - trim)) - 1)
    pauses = [b - a for a, b in zip(ordered[first:last], ordered[first + 1 : last + 1], strict=True)]
    long = [p for p in pauses if p > longer_than_s]
    return len(long), sum(long)
