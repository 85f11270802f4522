"""Every `regsync` command starts by importing the CLI: the heavy clients must wait for the commands using them.

simple-salesforce (with zeep), Redis, Celery and FastAPI cost ~0.5 s of imports together; `runs list`,
`runs show` and the admin commands need none of them. A top-level import creeping back shows here.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("simple_salesforce", "zeep", "redis", "celery", "kombu", "fastapi", "uvicorn")


def test_importing_the_cli_loads_no_heavy_client() -> None:
    probe = (
        f"import json, sys, worker.cli.main; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout) == []
