"""Runs the selected benchmarks in order, collects their sections, prints the table and writes RESULTS.md."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.baseline import run_naive
from bench.changes_run import ChangesSetup, run_changes
from bench.console import console_section, run_console
from bench.ledger import run_ledger
from bench.machine import describe_machine
from bench.options import BENCHMARKS, Options, parse
from bench.pump_run import run_pump_row
from bench.purge import run_purge
from bench.report import Section, print_table, write_results
from bench.scale import run_scale
from bench.sections_changes import changes_section
from bench.sections_pump import default_setups, memory_setup, pump_section
from bench.sections_purge import purge_section
from bench.sections_scale import ledger_section, scale_section
from bench.sections_sync import baseline_section, calls_section, throughput_section, variant_rows
from bench.services import Services
from bench.sync_run import BOUND_DATASET, SyncResult, SyncSetup, run_syncs

DEDUP_DATASET: dict[str, float] = {
    "stale_share": 0.05,
    "invalid_share": 0.02,
    "duplicate_share": 0.05,
    "dissolved_share": 0.0,
}

console = Console(width=200, stderr=True)


def _setup(options: Options, accounts: int, dataset: dict[str, Any]) -> SyncSetup:
    r = options.registry
    return SyncSetup(
        pool=r.pool,
        worker_concurrency=r.worker_concurrency,
        accounts=accounts,
        dataset=dataset,
        workers=r.workers,
        latency_s=r.latency_s,
        registry_limit_rps=r.limit_rps,
        requests_per_second=r.requests_per_second,
        burst=r.burst,
        registry_concurrency=r.concurrency,
    )


class Suite:
    def __init__(self, options: Options, services: Services, workdir: Path) -> None:
        self.options = options
        self.services = services
        self.workdir = workdir
        self.sections: list[Section] = []
        self._syncs: list[SyncResult] = []

    def wants(self, name: str) -> bool:
        return name in self.options.only

    def syncs(self) -> list[SyncResult]:
        """The regsync runs: the bound run (throughput, calls, baseline) and, for calls, the duplicates run.

        Both run once, with the same worker processes, the first time any benchmark needs them.
        """
        if not self._syncs:
            sizes = self.options.sizes
            setups = [_setup(self.options, sizes.accounts, BOUND_DATASET)]
            if self.wants("calls"):
                setups.append(_setup(self.options, sizes.dedup_accounts, DEDUP_DATASET))
            self._say(
                f"regsync runs over {' and '.join(f'{s.accounts:,}' for s in setups)} Accounts with "
                f"{self.options.registry.workers} worker processes"
            )
            self._syncs = run_syncs(setups, self.services, self.workdir / "sync")
        return self._syncs

    def sync(self) -> SyncResult:
        return self.syncs()[0]

    def throughput(self) -> Section:
        section = throughput_section(self.sync(), self.options.registry, self.options.sizes.accounts)
        if self.options.variant is not None:
            pool, concurrency = self.options.variant
            accounts = self.options.sizes.accounts
            self._say(
                f"regsync run over {accounts:,} Accounts, workers with --pool {pool} --concurrency {concurrency}"
            )
            setup = replace(
                _setup(self.options, accounts, BOUND_DATASET), pool=pool, worker_concurrency=concurrency
            )
            variant_rows(section, run_syncs([setup], self.services, self.workdir / "variant")[0], setup)
        return section

    def calls(self) -> Section:
        sizes = self.options.sizes
        shared = bool(self._syncs)
        bound_run, dedup = self.syncs()
        processes = self.options.registry.workers * self.options.registry.worker_concurrency
        section = calls_section(bound_run, dedup, sizes.accounts, sizes.dedup_accounts, processes)
        if shared:
            section.notes.append("Both runs were made, and timed, with the throughput benchmark's workers.")
        return section

    def baseline(self) -> Section:
        regsync, sizes, registry = self.sync(), self.options.sizes, self.options.registry
        self._say(f"naive baseline over {sizes.baseline_accounts:,} Accounts")
        naive = run_naive(
            sizes.baseline_accounts,
            BOUND_DATASET,
            self.workdir / "baseline",
            latency_s=registry.latency_s,
            limit_rps=registry.limit_rps,
        )
        return baseline_section(regsync, naive, sizes.accounts)

    def scale(self) -> Section:
        self._say("planning " + ", ".join(f"{n:,}" for n in self.options.sizes.scale) + " Accounts")
        return scale_section(run_scale(list(self.options.sizes.scale), self.services, self.workdir / "scale"))

    def ledger(self) -> Section:
        sizes = self.options.sizes
        self._say(f"ledger with {sizes.ledger_runs:,} runs and {sizes.ledger_chunks:,} chunk rows")
        result = run_ledger(
            sizes.ledger_runs,
            sizes.ledger_chunks,
            sizes.samples,
            self.services,
            self.workdir / "ledger",
            progress=self._say,
            cold_repeat=sizes.cold_cli_repeat,
        )
        return ledger_section(result)

    def registry_pump(self) -> Section:
        sizes = self.options.sizes
        setups = default_setups(sizes.pump_accounts, sizes.pump_small_accounts, sizes.pump_latencies_s)
        setups += [memory_setup(sizes.pump_memory_accounts)] if sizes.pump_memory_accounts else []
        results = []
        for index, setup in enumerate(setups):
            self._say(f"registry pump: {setup.label}, {setup.accounts:,} Accounts, R = {setup.rps:.0f}")
            results.append(run_pump_row(setup, self.services, self.workdir / f"pump-{index}"))
        return pump_section(results)

    def changes(self) -> Section:
        sizes = self.options.sizes
        setup = ChangesSetup(accounts=sizes.changes_accounts, changes=sizes.changes_feed)
        self._say(
            f"changes run: {setup.accounts:,} Accounts, {setup.changes:,} feed changes, R = {setup.rps:.0f}"
        )
        return changes_section(run_changes(setup, self.services, self.workdir / "changes", say=self._say))

    def console(self) -> Section:
        sizes = self.options.sizes
        self._say(
            f"console pages on a ledger of {sizes.ledger_runs:,} runs and {sizes.ledger_chunks:,} chunk rows"
        )
        result = run_console(
            sizes.ledger_runs,
            sizes.ledger_chunks,
            sizes.samples,
            self.services,
            self.workdir / "console",
            say=self._say,
        )
        return console_section(result)

    def purge(self) -> Section:
        rows = self.options.sizes.purge_failures
        self._say(f"retention purge of {rows:,} failure rows while a run writes")
        return purge_section(run_purge(rows, self.services, self.workdir / "purge"))

    def run_one(self, name: str, build: Callable[[], Section]) -> None:
        started = time.monotonic()
        try:
            section = build()
        except Exception as exc:  # one broken benchmark must not hide the others' numbers
            traceback.print_exc(file=sys.stderr)
            section = Section(name, f"{name} (failed)")
            section.add("benchmark did not complete", f"{type(exc).__name__}: {str(exc)[:300]}", met=False)
        section.notes.append(f"Benchmark time: {time.monotonic() - started:.0f} s.")
        self.sections.append(section)

    def _say(self, message: str) -> None:
        console.print(f"[bold]bench[/] {time.strftime('%H:%M:%S')} {message}", highlight=False)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench``: run, print the table, write RESULTS.md; exit 1 only with --strict and a miss."""
    argv = sys.argv[1:] if argv is None else argv
    options = parse(argv)
    services = Services.from_env()
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="regsync-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    machine = describe_machine(services.dsn(), f"{services.redis_base}/0")
    machine["load average at start (1/5/15 min)"] = "{:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())
    suite = Suite(options, services, workdir)
    for name in BENCHMARKS:
        if suite.wants(name):
            suite.run_one(name, getattr(suite, name.replace("-", "_")))
    machine["load average at end (1/5/15 min)"] = "{:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())
    print_table(suite.sections)
    results = options.results or workdir / "RESULTS.md"
    write_results(results, suite.sections, machine, "python -m bench " + " ".join(argv))
    print(f"results written to {results}")
    missed = any(row.met is False for section in suite.sections for row in section.rows)
    return 1 if options.strict and missed else 0
