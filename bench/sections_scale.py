"""Rows of the benchmarks that need no workers: planning at scale (4) and ledger latency (5)."""

from __future__ import annotations

import math

from bench.ledger import LedgerResult
from bench.report import Section
from bench.scale import ScalePoint
from worker.connections.preflight import RUN_START_CALLS

RSS_LIMIT_MB = 200.0
#: Time per 100k at the largest size may be at most this multiple of the time per 100k at the smallest.
LINEAR_TOLERANCE = 1.20
P99_LIMIT_MS = 50.0


def _mb(mib: float) -> float:
    return mib * 1024 * 1024 / 1_000_000


def scale_section(points: list[ScalePoint]) -> Section:
    section = Section("scale", "4. Scale: planning up to 1,000,000 Accounts")
    first = points[0]
    for point in points:
        ratio = point.per_100k_s / first.per_100k_s
        section.add(
            f"plan {point.accounts:,}: time per 100k",
            f"{point.per_100k_s:.2f} s ({point.seconds:.1f} s)",
            f"{first.per_100k_s:.2f} s per 100k at {first.accounts:,}",
            ratio,
            target=f"≤ {LINEAR_TOLERANCE:.2f} (linear)",
            met=ratio <= LINEAR_TOLERANCE,
        )
    largest = points[-1]
    if largest.first_half_s > 0:
        ratio = largest.second_half_s / largest.first_half_s
        section.add(
            f"plan {largest.accounts:,}: second half ÷ first half",
            f"{largest.second_half_s:.1f} s for chunks 55–100 %",
            f"{largest.first_half_s:.1f} s for chunks 10–55 %",
            ratio,
            target=f"≤ {LINEAR_TOLERANCE:.2f} (linear)",
            met=ratio <= LINEAR_TOLERANCE,
        )
    for point in points:
        peak = _mb(point.peak_rss_mib)
        section.add(
            f"plan {point.accounts:,}: planner peak RSS",
            f"{peak:.0f} MB (VmHWM)",
            f"{RSS_LIMIT_MB:.0f} MB",
            peak / RSS_LIMIT_MB,
            target=f"< {RSS_LIMIT_MB:.0f} MB",
            met=peak < RSS_LIMIT_MB,
        )
    for point in points:
        ok = (
            point.planned == point.accounts
            and point.chunks == point.chunks_sent
            and point.crm_calls == point.sandbox_calls == RUN_START_CALLS + math.ceil(point.accounts / 2000)
        )
        section.add(
            f"plan {point.accounts:,}: planned / chunks / Salesforce calls",
            f"{point.planned:,} / {point.chunks:,} / {point.crm_calls} (sandbox {point.sandbox_calls})",
            f"{point.accounts:,} Accounts, {math.ceil(point.accounts / 2000)} pages + {RUN_START_CALLS} check",
            target="all planned",
            met=ok,
        )
    section.notes += [
        "The planner runs in its own process (`python -m bench.planner_probe`): worker.sync.plan.plan_run with the "
        "connection's real Salesforce client and a dispatcher that discards chunk ids; the sandbox org runs in "
        "another process (`python -m bench.sandbox_server`), so its memory is not counted.",
        "Peak RSS is the probe's VmHWM, interpreter and imports included: "
        + ", ".join(f"{_mb(p.rss_before_mib):.0f} MB before planning {p.accounts:,}" for p in points)
        + ".",
        "Sandbox orgs (one process holding all sizes, "
        f"{_mb(points[-1].sandbox_rss_mib):.0f} MB RSS): seeding took "
        + ", ".join(f"{p.seeding_s:.0f} s for {p.accounts:,}" for p in points)
        + " (not in the measured time).",
        f"'Linear' is read as: time per 100k at each size within {LINEAR_TOLERANCE:.2f}× of the smallest size's, "
        "and, inside the largest run (same process, same minutes), its second half of chunks planned no slower "
        "than its first half (after the first tenth, which holds the query's start-up) by that factor. Sizes "
        "run one after the other, so a change in the machine's load between them shows in the first "
        "comparison only.",
    ]
    return section


def ledger_section(result: LedgerResult) -> Section:
    section = Section("ledger", "5. Ledger: runs list / runs show latency at scale (PostgreSQL)")
    for latency in result.latencies:
        section.add(
            latency.name,
            f"p50 {latency.p50_ms:.1f} ms, p99 {latency.p99_ms:.1f} ms",
            f"{latency.samples} calls; {P99_LIMIT_MS:.0f} ms",
            latency.p99_ms / P99_LIMIT_MS,
            target=f"p99 < {P99_LIMIT_MS:.0f} ms",
            met=latency.p99_ms < P99_LIMIT_MS,
        )
    cold = "not measured (--quick)" if result.cold_cli_ms is None else f"{result.cold_cli_ms:.0f} ms"
    section.add("`regsync runs list` as a new process (start-up included)", cold, "median of 3; not a target")
    section.settings = {
        "runs": f"{result.runs:,}",
        "chunk rows": f"{result.chunks:,}",
        "bulk load": f"{result.load_s:.0f} s (INSERT … SELECT generate_series, then VACUUM ANALYZE)",
    }
    section.notes += [f"Plan of `{name}`: {plan}" for name, plan in result.plans.items()]
    section.notes.append(
        "Views: worker.ledger.views.list_runs / show_run, each call in its own session as a command does. CLI: the "
        "Click command built once from the Typer app and invoked in-process (argument parsing, query, rich "
        "rendering), without the interpreter's start-up, which the last row shows once."
    )
    return section
