"""`regsync health`: is regsync up (ledger, Redis, beat, workers)? Exit 0 when it is, 1 when not.

The same checks as ``GET /v1/health``, read straight from the ledger and Redis (no web process needed), plus
each beat and worker process heard from in the last day and how long ago. Beat fails after
REGSYNC_BEAT_GRACE_S without a heartbeat, the workers when none beat within ``heartbeat.WORKER_GRACE_S``.
Redis and the ledger are imported by the command, not at start-up: every other `regsync` command stays light.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from config.settings import get_settings
from worker.cli.common import EXIT_FAILED, EXIT_OK, console, print_json
from worker.cli.tables import print_table

if TYPE_CHECKING:
    from worker.infra.heartbeat import Seen

PARTS = ("ledger", "redis", "beat", "workers")


def _graces() -> dict[str, float]:
    from worker.infra import heartbeat

    return {"beat": get_settings().beat_grace_s, "worker": heartbeat.WORKER_GRACE_S}


def _part_detail(name: str, part: dict[str, Any]) -> str:
    if name not in ("beat", "workers"):
        return str(part.get("detail") or "")
    from worker.infra.heartbeat import KEEP_S

    grace = _graces()["beat" if name == "beat" else "worker"]
    age = part["newest_age_s"]
    if age is None:
        return f"no heartbeat in the last {KEEP_S // 3600} h"
    if not part["ok"]:
        return f"silent for {age:.0f} s (grace {grace:.0f} s)"
    return f"{part['alive']} alive, newest heartbeat {age:.0f} s ago"


def _process_rows(seen: dict[str, list[Seen]]) -> list[dict[str, Any]]:
    graces = _graces()
    return [
        {"role": s.role, "name": s.name, "age_s": s.age_s, "alive": s.age_s <= graces[s.role]}
        for role in ("beat", "worker")
        for s in seen.get(role, [])
    ]


def _print_text(body: dict[str, Any], processes: list[dict[str, Any]]) -> None:
    rows = [(name, "ok" if body[name]["ok"] else "FAIL", _part_detail(name, body[name])) for name in PARTS]
    print_table(console, ("check", "status", "detail"), rows, title=f"regsync health: {body['status']}")
    if processes:
        table = [
            (p["name"], p["role"], f"{p['age_s']:.0f} s ago", "alive" if p["alive"] else "silent")
            for p in processes
        ]
        console.print()
        print_table(console, ("process", "role", "last heartbeat", "state"), table, right=("last heartbeat",))


def health_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Ledger, Redis, beat's and the workers' last heartbeats; exit 1 when any is down (beat: past its grace)."""
    from worker.infra import health as checks  # Redis and the ledger: only for this command

    now = time.time()
    body = checks.check(now)
    processes = _process_rows(checks.heard_from(get_settings().redis_url, now) or {})
    if as_json:
        print_json({**body, "grace_s": _graces(), "processes": processes})
    else:
        _print_text(body, processes)
    raise typer.Exit(EXIT_OK if body["status"] == "ok" else EXIT_FAILED)
