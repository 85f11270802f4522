"""Sandbox Salesforce orgs in a process of their own, so a measured planner's memory excludes the orgs'.

``python -m bench.sandbox_server --accounts N[,N…] --dir DIR`` starts one org per N, each seeded with N
Accounts from ``iter_accounts`` (same seed, same data), all served over TLS with one CA, and prints one JSON
line per org: ``url``, ``token_url``, ``ca_bundle``, ``accounts``, ``seconds`` (seeding time). It serves until
its standard input closes, then prints one JSON line per org with the API calls it answered, and exits.
The client secret comes from REGSYNC_BENCH_SANDBOX_SECRET, never from the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from worker.sandbox.dataset import iter_accounts
from worker.sandbox.salesforce import SandboxSalesforce
from worker.sandbox.stack import CLIENT_ID
from worker.sandbox.tls import SandboxCA

SECRET_VARIABLE = "REGSYNC_BENCH_SANDBOX_SECRET"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox_server", description=__doc__)
    parser.add_argument("--accounts", required=True, help="comma-separated sizes, one org each")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    secret = os.environ.get(SECRET_VARIABLE)
    if not secret:
        parser.error(f"set {SECRET_VARIABLE} to the sandbox client secret")
    ca = SandboxCA(args.dir)
    orgs = [_start(ca, int(size), args.seed, secret) for size in args.accounts.split(",")]
    sys.stdin.read()  # serve until the parent closes our standard input
    for org in orgs:
        print(json.dumps({"api_calls": org.api_calls, "requests": len(org.api_requests())}), flush=True)
        org.stop()
    return 0


def _start(ca: SandboxCA, accounts: int, seed: int, secret: str) -> SandboxSalesforce:
    started = time.monotonic()
    org = SandboxSalesforce(
        ca, iter_accounts(accounts, seed=seed), client_id=CLIENT_ID, client_secret=secret
    ).start()
    ready = {
        "url": org.url,
        "token_url": org.token_url,
        "ca_bundle": str(ca.bundle_path),
        "accounts": accounts,
        "seconds": round(time.monotonic() - started, 2),
    }
    print(json.dumps(ready), flush=True)
    return org


if __name__ == "__main__":
    raise SystemExit(main())
