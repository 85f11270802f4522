"""A simulated beat process (not a test module): calls the real tick on an accelerated clock shared by beats.

``python -m tests.integration.beat_sim START_REAL START_SIM END_SIM SPEED SEED [RACERS]`` waits until the wall
clock reaches ``START_REAL`` (epoch seconds), then ticks on a grid of real instants every ``GRID_S`` seconds (so
several beat processes tick at nearly the same moment, the race a second beat or a redelivered tick causes),
each with a small random jitter, passing ``now`` = the simulated time. It dispatches through Celery (Redis)
exactly as the ``regsync.tick`` task does, and prints the summed TickReport as JSON when the simulated clock
passes ``END_SIM``.

With ``RACERS`` > 0, nearly-the-same-moment is made exact: each insert of a slot's run waits at a Redis gate
until ``RACERS`` beats reached their insert of that slot (tests/integration/insert_race.py), and the JSON's
``inserts`` lists every attempt with PostgreSQL's answer (inserted, or refused by the unique constraint).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
import time
from contextlib import ExitStack
from typing import Any

GRID_S = 0.1
JITTER_S = 0.01


def simulated(start_real: float, start_sim: dt.datetime, speed: float, real: float) -> dt.datetime:
    return start_sim + dt.timedelta(seconds=(real - start_real) * speed)


def main(argv: list[str]) -> int:
    from config.settings import get_settings
    from tests.integration.insert_race import InsertAttempt, RedisGate, race_run_inserts

    start_real, speed, seed = float(argv[0]), float(argv[3]), int(argv[4])
    start_sim, end_sim = dt.datetime.fromisoformat(argv[1]), dt.datetime.fromisoformat(argv[2])
    racers = int(argv[5]) if len(argv) > 5 else 0
    with ExitStack() as stack:
        attempts: list[InsertAttempt] = []
        if racers:
            gate = RedisGate(get_settings().redis_url, racers)
            attempts = stack.enter_context(race_run_inserts(gate, racer=f"beat{seed}"))
        totals: dict[str, Any] = beat(start_real, start_sim, end_sim, speed, random.Random(seed))
        totals["inserts"] = [attempt.as_dict() for attempt in attempts]
    sys.stdout.write(json.dumps(totals) + "\n")
    return 0


def beat(
    start_real: float, start_sim: dt.datetime, end_sim: dt.datetime, speed: float, jitter: random.Random
) -> dict[str, Any]:
    """Tick until the simulated clock passes ``end_sim``; the summed TickReport plus ``ticks``."""
    from worker.infra.dispatch import CeleryDispatcher
    from worker.scheduling.tick import tick

    dispatch = CeleryDispatcher()
    totals: dict[str, Any] = {}
    step = 0
    while True:
        target = start_real + step * GRID_S + jitter.uniform(0, JITTER_S)
        time.sleep(max(0.0, target - time.time()))
        now = simulated(start_real, start_sim, speed, time.time())
        if now > end_sim:
            break
        for key, value in tick(dispatch, now=now).as_dict().items():
            totals[key] = totals.get(key, 0) + value
        step += 1
    totals["ticks"] = step
    return totals


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
