"""The registry-pump benchmark (issue 13): the registry at its limit whatever Salesforce's latency.

Rows per configuration: steady registry rate ÷ R, 429s, the registry's idle time, wall time against the floor
(distinct lookups ÷ R, plus plan time), Salesforce calls against their lower bound, counts against the truth.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.pump_run import PumpResult, PumpSetup
from bench.rates import TRIM_SHARE, rate_stats, silences
from bench.report import Section
from bench.sections_sync import salesforce_lower_bound

RATE_TARGET = 0.97
WALL_TARGET = 1.08
MEMORY_TARGET_MB = 200.0


def default_setups(accounts: int, small_accounts: int, latencies_s: Sequence[float]) -> list[PumpSetup]:
    """Default settings at each Salesforce latency, the small-token customer, and one tuned row."""
    rows = [PumpSetup(f"SF {s * 1000:.0f} ms", accounts, s) for s in latencies_s]
    small = f"R = 10, {small_accounts:,} Accounts, SF {latencies_s[-1] * 1000:.0f} ms"
    rows.append(PumpSetup(small, small_accounts, latencies_s[-1], rps=10.0))
    rows.append(
        PumpSetup(
            f"TUNED threads:2, SF {latencies_s[-1] * 1000:.0f} ms",
            accounts,
            latencies_s[-1],
            pool="threads",
            worker_concurrency=2,
            tuned=True,
        )
    )
    return rows


def memory_setup(accounts: int) -> PumpSetup:
    """Peak worker memory at scale: R = 500 (a bigger token) so that 100,000 Accounts take minutes, not ten."""
    return PumpSetup(
        f"MEMORY {accounts:,} Accounts, R = 500, SF 0 ms", accounts, 0.0, rps=500.0, memory_only=True
    )


def pump_section(results: Sequence[PumpResult]) -> Section:
    section = Section(
        "registry-pump", "6. The registry at its limit, whatever Salesforce's latency (issue 13)"
    )
    for result in results:
        _rows(section, result)
    first = results[0].setup if results else None
    if first is not None:
        section.settings = {
            "Accounts": f"{first.accounts:,}, unless a row's label says otherwise",
            "worker processes": f"{first.workers} × `celery worker --pool {first.pool} --concurrency "
            f"{first.worker_concurrency}`, every REGSYNC_* setting at its default (the TUNED row: --pool threads "
            "--concurrency 2)",
            "sandbox": "Salesforce org + Proff registry in one process of their own (python -m bench.world_server), "
            f"registry latency {first.registry_latency_s * 1000:.0f} ms, 429 above R requests per wall-clock second",
            "connection limiter": "requests_per_second = R, burst = 5",
        }
    section.notes += [
        f"Steady part: the registry's request log without the first and last {TRIM_SHARE:.0%} of requests. "
        "Idle: gaps over 0.25 s between two registry requests in the steady part. Floor: distinct lookups ÷ R; "
        "plan time: from the run's start until the ledger said planning was complete.",
        "Salesforce lower bound: run-start check + ceil(N/2000) query pages + a re-read and a write per chunk + one "
        "describe per worker session.",
    ]
    return section


def _rows(section: Section, result: PumpResult) -> None:
    setup, label = result.setup, f"[{result.setup.label}] "
    stats = rate_stats(result.registry_times)
    ratio = stats.steady_rps / setup.rps
    informative = setup.tuned or setup.memory_only
    target = "report (tuned)" if setup.tuned else "report" if setup.memory_only else f"≥ {RATE_TARGET}"
    section.add(
        f"{label}registry req/s ÷ R (steady part)",
        f"{stats.steady_rps:.1f} req/s over {stats.steady_span_s:.0f} s",
        f"R = {setup.rps:.0f}",
        ratio,
        target=target,
        met=None if informative else ratio >= RATE_TARGET,
    )
    too_many = result.statuses.get(429, 0)
    section.add(
        f"{label}429 responses", str(too_many), f"{stats.requests:,} requests", target="0", met=too_many == 0
    )
    count, idle = silences(result.registry_times)
    section.add(
        f"{label}registry idle (steady part)",
        f"{idle:.1f} s in {count} gaps > 0.25 s",
        f"{stats.steady_span_s:.0f} s",
    )
    _wall_row(section, result, label)
    _salesforce_row(section, result, label)
    section.add(
        f"{label}peak RSS of a worker process",
        f"{result.peak_rss_mb:.0f} MB",
        f"{setup.accounts:,} Accounts",
        target="< 200 MB",
        met=result.peak_rss_mb < MEMORY_TARGET_MB,
    )


def _wall_row(section: Section, result: PumpResult, label: str) -> None:
    floor = result.distinct_lookups / result.setup.rps
    ratio = result.wall_s / (floor + result.plan_s)
    met = result.wall_s <= WALL_TARGET * floor + result.plan_s
    section.add(
        f"{label}wall ÷ (distinct lookups ÷ R + plan time)",
        f"{result.wall_s:.1f} s wall",
        f"{result.distinct_lookups:,} ÷ {result.setup.rps:.0f} = {floor:.1f} s + plan {result.plan_s:.1f} s",
        ratio,
        target=f"wall ≤ {WALL_TARGET} × floor + plan",
        met=None if result.setup.tuned or result.setup.memory_only else met,
    )


def _salesforce_row(section: Section, result: PumpResult, label: str) -> None:
    setup = result.setup
    bound = salesforce_lower_bound(setup.accounts, setup.workers * setup.worker_concurrency)
    calls = sum(result.salesforce.values())
    truth, view = result.truth, result.view
    exact = view["status"] == "succeeded" and all(
        view[k] == truth[k] for k in ("planned", "unchanged", "updated")
    )
    section.add(
        f"{label}Salesforce calls ÷ lower bound; counts = truth",
        f"{calls} (ledger {view['crm_calls']}); counts {'equal' if exact else 'DIFFER'}",
        f"{bound}",
        calls / bound,
        target="≤ 1.00, equal",
        met=calls <= bound and exact,
    )
