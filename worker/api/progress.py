"""Chunk progress and ETA of a run, from its ledger counters (a pure function of the run and the clock)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from worker.ledger.models import Run, RunStatus
from worker.ledger.views import records_done


def progress(run: Run, now: dt.datetime) -> dict[str, Any]:
    """How far ``run`` is; the ETA assumes the remaining chunks go as fast as the finished ones did."""
    done_records = records_done(run)
    final = RunStatus(run.status).final
    percent = None
    if final:
        percent = 100.0
    elif run.planned_complete and run.chunks_total:
        percent = round(100.0 * run.chunks_done / run.chunks_total, 1)
    eta_s = 0.0 if final else _eta_s(run, now)
    return {
        "planning_complete": bool(run.planned_complete),
        "chunks_total": run.chunks_total,
        "chunks_done": run.chunks_done,
        "records_planned": run.planned,
        "records_done": done_records,
        "percent": percent,
        "eta_s": eta_s,
        "eta_at": None
        if eta_s is None
        else (run.finished_at if final else now + dt.timedelta(seconds=eta_s)),
    }


def _eta_s(run: Run, now: dt.datetime) -> float | None:
    if not run.planned_complete or run.started_at is None or run.chunks_done == 0:
        return None
    elapsed = (now - run.started_at).total_seconds()
    remaining = run.chunks_total - run.chunks_done
    return round(max(0.0, elapsed / run.chunks_done * remaining), 1)
