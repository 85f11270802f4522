"""A simulated beat process (not a test module): calls the real tick on an accelerated clock shared by beats.

``python -m tests.integration.beat_sim START_REAL START_SIM END_SIM SPEED SEED`` waits until the wall clock
reaches ``START_REAL`` (epoch seconds), then ticks on a grid of real instants every ``GRID_S`` seconds (so
several beat processes tick at nearly the same moment, the race a second beat or a redelivered tick causes),
each with a small random jitter, passing ``now`` = the simulated time. It dispatches through Celery (Redis)
exactly as the ``regsync.tick`` task does, and prints the summed TickReport as JSON when the simulated clock
passes ``END_SIM``.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
import time

GRID_S = 0.1
JITTER_S = 0.01


def simulated(start_real: float, start_sim: dt.datetime, speed: float, real: float) -> dt.datetime:
    return start_sim + dt.timedelta(seconds=(real - start_real) * speed)


def main(argv: list[str]) -> int:
    from worker.dispatch import CeleryDispatcher
    from worker.scheduling.tick import tick

    start_real, speed, seed = float(argv[0]), float(argv[3]), int(argv[4])
    start_sim, end_sim = dt.datetime.fromisoformat(argv[1]), dt.datetime.fromisoformat(argv[2])
    jitter = random.Random(seed)
    dispatch = CeleryDispatcher()
    totals: dict[str, int] = {}
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
    sys.stdout.write(json.dumps(totals) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
