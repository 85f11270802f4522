"""Rows of the retention purge benchmark (issue 15): purge rate, and how long a concurrent run waited."""

from __future__ import annotations

from bench.purge import BASELINE_S, WRITER_PAUSE_S, WRITER_ROWS, PurgeResult
from bench.report import Section

#: A run writing during a purge must never wait on it longer than this.
MAX_WAIT_MS = 1000.0


def purge_section(result: PurgeResult) -> Section:
    section = Section(
        "purge", f"8. Retention purge of {result.rows:,} failure rows while a run writes (issue 15)"
    )
    done = result.purged == result.rows and result.left == 0
    section.add(
        "failure rows purged",
        f"{result.purged:,} ({result.left:,} left)",
        f"{result.rows:,} loaded",
        result.purged / result.rows if result.rows else None,
        target="all",
        met=done,
    )
    section.add("purge rate", f"{result.rows_per_s:,.0f} rows/s ({result.purge_s:.1f} s)")
    during, alone = result.during, result.baseline
    section.add(
        "writer max wait during the purge",
        f"{during.max_ms:.0f} ms",
        f"{MAX_WAIT_MS:.0f} ms",
        during.max_ms / MAX_WAIT_MS,
        target=f"< {MAX_WAIT_MS:.0f} ms",
        met=during.transactions > 0 and during.max_ms < MAX_WAIT_MS,
    )
    section.add(
        "writer p99 wait during the purge",
        f"{during.p99_ms:.1f} ms (p50 {during.p50_ms:.1f} ms, {during.transactions:,} transactions)",
        f"{alone.p99_ms:.1f} ms alone (p50 {alone.p50_ms:.1f}, max {alone.max_ms:.0f} ms)",
        during.p99_ms / alone.p99_ms if alone.p99_ms else None,
    )
    section.settings = {
        "batch": f"{result.batch_rows:,} rows per transaction (BATCH_ROWS, the default)",
        "writer": f"{WRITER_ROWS} failure inserts + the run row's update per transaction, "
        f"{WRITER_PAUSE_S * 1000:.0f} ms apart",
    }
    section.notes += [
        f"Loaded with one INSERT … SELECT generate_series in {result.load_s:.1f} s, then VACUUM ANALYZE.",
        "The purge is the real code (`purge_connection`, kind failures) over a throwaway PostgreSQL ledger.",
        f"The writer is a thread with its own connection; its wait is each transaction's wall time, measured "
        f"alone for {BASELINE_S:.0f} s first, then for the whole purge.",
    ]
    return section
