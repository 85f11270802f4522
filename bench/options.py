"""Command-line options of ``python -m bench``: which benchmarks, at which sizes, with which settings."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

BENCHMARKS = (
    "throughput",
    "calls",
    "baseline",
    "scale",
    "ledger",
    "registry-pump",
    "changes",
    "console",
    "purge",
)


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big each benchmark is. ``FULL`` is what the issue asks for; ``QUICK`` is a smoke run (< 60 s)."""

    accounts: int = 20_000
    dedup_accounts: int = 5_000
    baseline_accounts: int = 1_000
    scale: tuple[int, ...] = (100_000, 300_000, 1_000_000)
    ledger_runs: int = 100_000
    ledger_chunks: int = 5_000_000
    samples: int = 300
    cold_cli_repeat: int = 3
    pump_accounts: int = 20_000  # registry-pump rows at R = 200
    pump_small_accounts: int = 2_000  # the R = 10 row
    pump_latencies_s: tuple[float, ...] = (0.0, 0.4, 1.0)  # Salesforce latency per row
    pump_memory_accounts: int = 100_000  # the peak-memory row (0: none)
    changes_accounts: int = 1_000_000  # the changes run's org
    changes_feed: int = 3_000  # its feed items (0.3 %)
    purge_failures: int = 1_000_000  # failure rows the retention purge deletes while a run writes


FULL = Sizes()
QUICK = Sizes(
    accounts=600,
    dedup_accounts=400,
    baseline_accounts=30,
    scale=(1_000, 3_000, 10_000),
    ledger_runs=1_000,
    ledger_chunks=20_000,
    samples=30,
    cold_cli_repeat=1,
    pump_accounts=600,
    pump_small_accounts=60,
    pump_latencies_s=(0.0,),
    pump_memory_accounts=0,
    changes_accounts=5_000,
    changes_feed=300,
    purge_failures=20_000,
)


@dataclass(frozen=True, slots=True)
class Registry:
    """The sandbox registry's behaviour and the connection's limiter settings for the regsync runs."""

    limit_rps: float = 200.0  # R: the sandbox answers 429 above it (fixed one-second windows)
    latency_s: float = 0.05
    requests_per_second: float = 200.0  # the connection's limit = R; the Redis limiter keeps its own headroom
    burst: int = 5
    workers: int = 2
    pool: str = "prefork"  # celery worker --pool
    worker_concurrency: int = 1  # celery worker --concurrency: chunks one worker process runs at once
    concurrency: int = 16  # REGSYNC_REGISTRY_CONCURRENCY: requests in flight per chunk


@dataclass(frozen=True, slots=True)
class Options:
    only: tuple[str, ...]
    sizes: Sizes
    registry: Registry
    results: Path | None  # None: RESULTS.md in the work directory (quick runs)
    workdir: Path | None
    quick: bool
    strict: bool
    #: Also measure throughput with this (pool, --concurrency) in the same worker processes; None: don't.
    variant: tuple[str, int] | None


def _sizes_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("give at least one positive size")
    return values


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench", description="regsync benchmarks (see bench/RESULTS.md)."
    )
    p.add_argument("--only", action="append", choices=BENCHMARKS, help="run only this benchmark (repeatable)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run; results go to the work dir")
    p.add_argument(
        "--results",
        type=Path,
        help="where to write RESULTS.md (default bench/RESULTS.md; with --quick, the work directory)",
    )
    p.add_argument("--workdir", type=Path, help="scratch directory (default: a new temporary directory)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--accounts", type=int, help="Accounts in the regsync run (throughput, calls)")
    p.add_argument("--dedup-accounts", type=int, help="Accounts in the duplicates/invalid calls run")
    p.add_argument("--baseline-accounts", type=int, help="Accounts the naive baseline is timed on")
    p.add_argument("--scale-sizes", type=_sizes_list, help="planning sizes, e.g. 100000,300000,1000000")
    p.add_argument("--ledger-runs", type=int, help="runs bulk-loaded into the ledger")
    p.add_argument("--ledger-chunks", type=int, help="chunk rows bulk-loaded into the ledger")
    p.add_argument("--samples", type=int, help="timed calls per ledger query path")
    p.add_argument("--workers", type=int, help="celery worker processes (default 2)")
    p.add_argument("--registry-concurrency", type=int, help="REGSYNC_REGISTRY_CONCURRENCY (default 16)")
    p.add_argument("--rps", type=float, help="the connection's requests_per_second (default 200)")
    p.add_argument("--burst", type=int, help="the connection's burst (default 5)")
    p.add_argument("--pool", choices=("prefork", "threads"), help="celery worker --pool (default prefork)")
    p.add_argument("--worker-concurrency", type=int, help="celery worker --concurrency (default 1)")
    p.add_argument(
        "--variant",
        default=None,
        help="also measure throughput with POOL:CONCURRENCY per worker process (default threads:2; "
        "none with --quick); 'none' to skip",
    )
    return p


def _variant(text: str | None, quick: bool) -> tuple[str, int] | None:
    if text is None:
        return None if quick else ("threads", 2)
    if text == "none":
        return None
    pool, _, concurrency = text.partition(":")
    if pool not in ("prefork", "threads") or not concurrency.isdigit() or int(concurrency) < 1:
        raise SystemExit(f"--variant {text!r}: expected POOL:CONCURRENCY, e.g. threads:2")
    return pool, int(concurrency)


def parse(argv: list[str] | None = None) -> Options:
    args = parser().parse_args(argv)
    sizes = QUICK if args.quick else FULL
    overrides = {
        "accounts": args.accounts,
        "dedup_accounts": args.dedup_accounts,
        "baseline_accounts": args.baseline_accounts,
        "scale": args.scale_sizes,
        "ledger_runs": args.ledger_runs,
        "ledger_chunks": args.ledger_chunks,
        "samples": args.samples,
    }
    sizes = replace(sizes, **{k: v for k, v in overrides.items() if v is not None})
    registry_overrides = {
        "workers": args.workers,
        "concurrency": args.registry_concurrency,
        "requests_per_second": args.rps,
        "burst": args.burst,
        "pool": args.pool,
        "worker_concurrency": args.worker_concurrency,
    }
    registry = replace(Registry(), **{k: v for k, v in registry_overrides.items() if v is not None})
    default_results = Path(__file__).resolve().parent / "RESULTS.md"
    return Options(
        only=tuple(args.only or BENCHMARKS),
        sizes=sizes,
        registry=registry,
        results=args.results or (None if args.quick else default_results),
        workdir=args.workdir,
        quick=args.quick,
        strict=args.strict,
        variant=_variant(args.variant, args.quick),
    )
