"""Helpers (not a test module) for browser tests: Debian's Chromium driven by Playwright, axe-core from npm,
and the web app served by uvicorn in a thread of the test process.

Never ``playwright install``: the browser is ``/usr/bin/chromium`` (``scripts/chromium`` installs it).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

REPO = Path(__file__).resolve().parents[2]
AXE_DIR = REPO / ".cache" / "axe"
AXE_JS = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


def chromium_path() -> str:
    """Debian's Chromium, installed by scripts/chromium when missing (fails the test when it cannot be had)."""
    found = subprocess.run([str(REPO / "scripts" / "chromium")], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        pytest.fail(f"no Chromium for the browser test: {found.stderr.strip()}")
    return found.stdout.strip()


def axe_source() -> str:
    """axe-core's browser bundle, installed from the npm registry into .cache/axe once."""
    if not AXE_JS.exists():
        AXE_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(AXE_DIR), "axe-core@4"],
            check=True, timeout=180, capture_output=True,
        )  # fmt: skip
    return AXE_JS.read_text("utf-8")


def serious_violations(page: Any, source: str) -> list[str]:
    """Critical and serious axe-core violations of the page as shown now (evaluated over CDP, so the page's
    Content-Security-Policy, which allows only its own scripts, need not be loosened)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(source)
    result = page.evaluate("async () => (await axe.run(document)).violations")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result
        if v["impact"] in ("critical", "serious")
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """``app`` on 127.0.0.1 in a thread for the length of the block; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="console-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the web app did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
