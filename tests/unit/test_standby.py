"""`regsync standby`, the tail of the Procfile's release line: waits under honcho, returns at once elsewhere."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

STANDBY = [sys.executable, "-m", "worker.cli.main", "standby"]


def environ(**extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "HONCHO_PROCESS_NAME"} | extra


def test_standby_exits_0_at_once_outside_honcho() -> None:
    done = subprocess.run(STANDBY, env=environ(), capture_output=True, text=True, timeout=60, check=False)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "standby: not under honcho, nothing to wait for"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_standby_under_honcho_waits_until_stopped_then_exits_0(stop: signal.Signals) -> None:
    process = subprocess.Popen(
        STANDBY, env=environ(HONCHO_PROCESS_NAME="release.1"), stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once the stop signals are blocked: none is lost after it
        assert "standing by so honcho keeps web, worker and beat running" in line, line
        assert process.poll() is None, "standby exited without being stopped"
        process.send_signal(stop)
        assert process.wait(timeout=60) == 0
        assert process.stdout.read() == ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
