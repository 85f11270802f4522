"""`regsync demo --console`: the demo's runs, then the console on 127.0.0.1 with a printed sign-in key, until
Ctrl-C (SIGINT) stops it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.browser import free_port
from tests.integration.console_world import CSRF

URL = re.compile(r"(http://127\.0\.0\.1:\d+/console/login)")
KEY = re.compile(r"\(shown once\): (rsk_[A-Za-z0-9_-]+)")


def _wait_for_key(demo: subprocess.Popen[str], timeout_s: float) -> tuple[str, str, str]:
    seen = ""
    deadline = time.monotonic() + timeout_s
    assert demo.stdout is not None
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        seen += line
        url, key = URL.search(seen), KEY.search(seen)
        if url and key:
            return url.group(1), key.group(1), seen
        assert line or demo.poll() is None, seen
    raise AssertionError(f"no console URL and key after {timeout_s} s:\n{seen}")


def test_demo_console_serves_the_demo_runs_until_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REGSYNC_")}
    environ.update(COLUMNS="200", PYTHONIOENCODING="utf-8", PYTHONUNBUFFERED="1")
    demo = subprocess.Popen(
        [sys.executable, "-m", "worker.cli.main", "demo", "--dir", str(tmp_path / "demo"), "--accounts", "60",
         "--no-redis", "--console", "--console-port", str(port)],
        cwd=tmp_path, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        url, key, printed = _wait_for_key(demo, 90)
        assert url == f"http://127.0.0.1:{port}/console/login" and "serving until Ctrl-C" not in printed[:10]
        time.sleep(1.0)  # uvicorn binds right after the lines are printed
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=True, timeout=10) as client:
            form = client.get("/console/login")
            token = CSRF.search(form.text)
            assert form.status_code == 200 and token
            runs = client.post("/console/login", data={"api_key": key, "csrf": token.group(1)})
            assert runs.status_code == 200 and "run 1" in runs.text and "partially failed" in runs.text
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=30) in (0, 1)  # the demo's own verdict; it stopped
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
