"""`python -m bench --quick` runs all five benchmarks end to end at tiny sizes and reports every ratio.

No wall time is asserted: only that each benchmark produced its ratios, that the deterministic call counts and
correctness checks hold, and that RESULTS.md is rendered into the work directory, never over bench/RESULTS.md.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = ("throughput", "calls", "baseline", "scale", "ledger", "changes", "console")
RATIO_CELL = re.compile(r"\|\s*\d+\.\d+\s*\|")


def _markdown_rows(text: str, bench: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"| {bench} |")]


@dataclass(frozen=True)
class QuickRun:
    done: subprocess.CompletedProcess[str]
    workdir: Path
    real_results_before: bytes | None


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> QuickRun:
    """One `python -m bench --quick` for the whole module (it starts real workers, sandboxes and databases)."""
    real_results = REPO / "bench" / "RESULTS.md"
    before = real_results.read_bytes() if real_results.exists() else None
    workdir = tmp_path_factory.mktemp("bench")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("REGSYNC_") or k.startswith("REGSYNC_TEST")
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--workdir", str(workdir)],
        cwd=REPO,
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    return QuickRun(done, workdir, before)


def test_quick_bench_prints_every_ratio_and_renders_results_in_the_workdir(quick_run: QuickRun) -> None:
    done = quick_run.done
    assert done.returncode == 0, done.stderr[-4000:]
    table = done.stdout
    for bench in BENCHMARKS:
        printed = [line for line in table.splitlines() if line.startswith(f"│ {bench} ")]
        assert any(re.search(r"│\s*\d+\.\d+\s*│", line) for line in printed), (
            f"no ratio for {bench}:\n{table}"
        )
    assert "did not complete" not in table, done.stderr[-4000:]

    results = (quick_run.workdir / "RESULTS.md").read_text(encoding="utf-8")
    real_results = REPO / "bench" / "RESULTS.md"
    assert (real_results.read_bytes() if real_results.exists() else None) == quick_run.real_results_before
    assert "## Machine" in results and "- nproc: " in results and "- PostgreSQL: PostgreSQL " in results
    for bench in BENCHMARKS:
        rows = _markdown_rows(results, bench)
        assert any(RATIO_CELL.search(row) for row in rows), f"RESULTS.md has no ratio for {bench}"


def test_quick_bench_checks_that_are_not_timings_hold(quick_run: QuickRun) -> None:
    """Call counts against their bounds and counts against the sandbox's truth are exact, whatever the load."""
    assert quick_run.done.returncode == 0, quick_run.done.stderr[-4000:]
    results = (quick_run.workdir / "RESULTS.md").read_text(encoding="utf-8")

    deterministic = (
        "Salesforce calls ÷ lower bound",
        "run counts equal the sandbox's truth",
        "invalid org numbers sent to the registry",
        "match the sandbox logs",
        "planned / chunks / Salesforce calls",
    )
    rows = [line for line in results.splitlines() if any(name in line for name in deterministic)]
    assert len(rows) >= len(deterministic), results
    assert all(line.rstrip().endswith("| met |") for line in rows), "\n".join(rows)
