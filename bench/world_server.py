"""A sandbox world (Salesforce org + registry, one CA) in a process of its own, for the registry-pump benchmark.

``python -m bench.world_server --accounts N --dir DIR --rps R`` seeds the world, prints one JSON line (the
connection file's content, secrets, CA bundle, the run's truth) and then answers one JSON command per line on
standard input with one JSON line: ``configure`` (latencies, 429 limit; clears the logs), ``report`` (what the
servers saw since), ``script_feed`` (the changes benchmark's feed items, bench.changes_feed), ``quit``.
``--created-ago S`` seeds the org's records as created S seconds ago (their SystemModstamp too), and
``--no-truth`` skips computing a full run's expected counts (a million Accounts: the changes benchmark).
Its garbage collector is frozen and off while measuring (worker.sandbox.gc_pause):
a real registry does not share a heap with anything of ours, and a collection would bunch requests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.changes_feed import script_feed
from bench.sync_run import BOUND_DATASET, classify_salesforce
from worker.sandbox.gc_pause import no_gc_pauses
from worker.sandbox.stack import Stack, sandbox_stack

NAME = "pump-bench"
FEED_PATH = "/api/changes/"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.world_server", description=__doc__)
    parser.add_argument("--accounts", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--rps", type=float, required=True, help="the connection's requests_per_second")
    parser.add_argument("--burst", type=int, default=5)
    parser.add_argument("--created-ago", type=float, default=None, help="seeded records' age in seconds")
    parser.add_argument("--no-truth", action="store_true", help="don't compute a full run's expected counts")
    args = parser.parse_args(argv)
    dataset: dict[str, Any] = dict(BOUND_DATASET)
    if args.created_ago is not None:
        dataset["created_at"] = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=args.created_ago)
    with sandbox_stack(args.dir, args.accounts, validation_failures=0, **dataset) as stack:
        _say(_ready(stack, args.rps, args.burst, truth=not args.no_truth))
        with no_gc_pauses():
            for line in sys.stdin:
                command = json.loads(line)
                if command["cmd"] == "quit":
                    break
                _say(_answer(stack, command))
    return 0


def _ready(stack: Stack, rps: float, burst: int, *, truth: bool = True) -> dict[str, Any]:
    spec_data = stack.spec_data(NAME, "proff", requests_per_second=rps, burst=burst)
    return {
        "spec_data": spec_data,
        "client_secret": stack.client_secret,
        "registry_token": stack.registry_token,
        "ca_bundle": str(stack.ca.bundle_path),
        "truth": asdict(stack.truth(stack.spec(NAME))) if truth else None,
    }


def _answer(stack: Stack, command: dict[str, Any]) -> dict[str, Any]:
    if command["cmd"] == "configure":
        stack.salesforce.latency_s = float(command["salesforce_latency_s"])
        stack.registry.latency_s = float(command["registry_latency_s"])
        stack.registry.rate_limit(command.get("limit_rps"))
        stack.registry.clear_requests()
        stack.salesforce.requests.clear()
        return {"ok": True}
    if command["cmd"] == "report":
        return _report(stack)
    if command["cmd"] == "script_feed":
        return script_feed(stack, int(command["total"]))
    return {"error": f"unknown command {command['cmd']!r}"}


def _report(stack: Stack) -> dict[str, Any]:
    requests = stack.registry.requests
    salesforce = Counter(classify_salesforce(r.method, r.path) for r in stack.salesforce.api_requests())
    return {
        "registry_times": sorted(r.at for r in requests),
        "registry_paths": len({r.path for r in requests}),
        "registry_feed": sum(1 for r in requests if r.path.startswith(FEED_PATH)),
        "statuses": {str(k): v for k, v in dict(stack.registry.statuses).items()},
        "salesforce": dict(salesforce),
        "salesforce_queries": dict(
            Counter(_soql_shape(r.query) for r in stack.salesforce.api_requests() if "/query" in r.path)
        ),
    }


def _soql_shape(query: dict[str, list[str]]) -> str:
    """A query request's SOQL up to its WHERE (a queryMore: its locator), to tell query kinds apart."""
    soql = (query.get("q") or ["queryMore"])[0]
    return soql.split(" WHERE ")[0][:100]


def _say(data: dict[str, Any]) -> None:
    print(json.dumps(data), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
