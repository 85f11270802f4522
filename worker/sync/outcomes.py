"""What a chunk task and a planning task return: one word each, typed (Celery results and metrics labels).

A leaf module (no imports of ours), so that ``worker.infra.metrics`` can build its help texts from it.
"""

from __future__ import annotations

from enum import StrEnum


class ChunkOutcome(StrEnum):
    """What ``sync_chunk`` did with one chunk."""

    #: The chunk was synced and finished (its records counted, failures recorded).
    DONE = "done"
    #: The run was stopping (cancelled or failed) before the chunk started: cancelled untouched.
    DROPPED = "dropped"
    #: The API budget is spent: the chunk was handed back untouched and the run paused.
    PAUSED = "paused"
    #: Another attempt holds the chunk, or it is final already: nothing was done.
    NOT_CLAIMED = "not_claimed"
    #: A permanent error about the whole run failed the run at once (and this chunk).
    ABORTED = "aborted"
    #: No attempt is left: every record of the chunk failed with the reason, and the run goes on.
    GAVE_UP = "gave_up"
    #: This attempt outlived its lease and another attempt took the chunk over; it stopped without writing.
    TAKEN_OVER = "taken_over"


class PlanOutcome(StrEnum):
    """What ``plan_run`` did with one run."""

    #: Planning completed: every chunk is stored and sent.
    PLANNED = "planned"
    #: Another planner holds the run, or it is not queued or resumable: nothing was done.
    NOT_CLAIMED = "not_claimed"
    #: A permanent error, or a transient one with no attempt left, failed the run.
    FAILED = "failed"
    #: The org's API limit refused the planner: the run is paused; the sweeper resumes it.
    PAUSED = "paused"
    #: Another planner took the run over (this one outlived its lease); it stopped.
    TAKEN_OVER = "taken_over"


class PumpOutcome(StrEnum):
    """What the registry pump task did with one run (the pump itself runs on in a thread of that worker)."""

    #: This worker took the run's pump and started it.
    STARTED = "started"
    #: Another pump holds the run, the run is not running, the pump is done, or out of attempts.
    NOT_CLAIMED = "not_claimed"
    #: No pump in this deployment (REGSYNC_REGISTRY_PUMP off, or no shared Redis).
    DISABLED = "disabled"
