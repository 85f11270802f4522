"""Issue 5, acceptance 5: `regsync report compliance --json` (the CLI as a subprocess) reports exactly the alerts
this test created, and the HTML report renders in headless Chromium with a drawn run timeline.

The ledger history is written with a frozen clock: three alerts with known times to detect and to notify, one
notice in time, one late, one never sent, one escalation and one recovery."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import time_machine

from tests.conftest import RegsyncEnv, service_missing
from tests.e2e.png import bounding_box, colours, count_near, read_png
from tests.integration.alerts_world import TWO_STEP_ALERTS, FakeChannels, add_connection, add_run
from worker.alerts.evaluator import evaluate
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent, utcnow

REPO = Path(__file__).resolve().parents[2]
MIN = dt.timedelta(minutes=1)
PAGER = {
    "notice_period_minutes": 60,
    "channels": {"pager": {"type": "webhook", "url": "https://pager.example/x"}},
}
PLOT_RGB = (0xEE, 0xF3, 0xFB)  # report_html.PLOT_COLOUR
OPS = {"notice_period_minutes": 60, "channels": {"ops": {"type": "webhook", "url": "https://ops.example/x"}}}

pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)


def tick(at: dt.datetime, channels: FakeChannels) -> None:
    with time_machine.travel(at, tick=False):
        evaluate(at, channels=channels, sinks=[])


def write_history(base: dt.datetime) -> None:
    """A: notified after 2 min, escalated, recovered. B: never notified (its channel is down). C: notified late."""
    channels = FakeChannels()
    channels.channel("pager").fail = "transient"
    a, b, c = (
        add_connection("alpha", TWO_STEP_ALERTS),
        add_connection("bravo", PAGER),
        add_connection("charlie", OPS),
    )
    add_run(a, "failed", base, planned=10, failed=10)
    tick(base + 2 * MIN, channels)  # A opened and notified: detect 120 s, notify 120 s
    add_run(b, "partially_failed", base, planned=100, failed=5)
    tick(base + 5 * MIN, channels)  # B opened (detect 300 s); its only channel fails
    tick(base + 12 * MIN, channels)  # A escalated to step 2
    add_run(a, "succeeded", base + 60 * MIN, planned=10, updated=1)
    tick(base + 61 * MIN, channels)  # A resolved, one recovery notice
    add_run(c, "failed", base, planned=3, failed=3)
    tick(base + 90 * MIN, channels)  # C opened and notified 90 min after detection: past its 60 min deadline


def regsync(env: RegsyncEnv, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REGSYNC_")}
    environ |= {
        "REGSYNC_DATABASE_URL": env.database_url,
        "REGSYNC_SECRET_KEY": env.secret_key,
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "worker.cli.main", *args],
        capture_output=True, text=True, cwd=REPO, env=environ, timeout=60, check=False,
    )  # fmt: skip


def test_report_json_counts_exactly_the_alerts_created(env: RegsyncEnv) -> None:
    write_history(utcnow().replace(microsecond=0) - dt.timedelta(hours=5))

    done = regsync(env, "report", "compliance", "--since", "1d", "--json")

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["runs"]["by_status"] == {"failed": 2, "partially_failed": 1, "succeeded": 1}
    alerts = report["alerts"]
    assert alerts["by_kind"] == {"run_failed": 2, "run_partially_failed": 1}
    assert (alerts["escalations"], alerts["recovery_notices"], alerts["unresolved"]) == (1, 1, 2)
    assert report["time_to_detect_s"] == {"count": 3, "p50": 300.0, "p95": 5400.0, "max": 5400.0}
    assert report["time_to_notify_s"] == {"count": 2, "p50": 120.0, "p95": 5400.0, "max": 5400.0}
    assert report["notices"] == {
        "due": 3, "within_deadline": 1, "late": 1, "never_sent": 1, "within_deadline_pct": 33.33, "pending": 0,
    }  # fmt: skip
    with session_scope() as session:
        audit_events = session.query(AuditEvent).count()
    assert report["audit_chain"]["ok"] is True and report["audit_chain"]["checked"] == audit_events


def chromium() -> str:
    found = subprocess.run([str(REPO / "scripts" / "chromium")], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        service_missing(f"headless Chromium is needed for the report screenshot: {found.stderr.strip()}")
    return found.stdout.strip()


def screenshot(html: Path, png: Path, profile: Path) -> bytes:
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", f"--screenshot={png}", "--window-size=1200,900", html.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0 and png.exists(), done.stderr[-2000:]
    return png.read_bytes()


def test_html_report_renders_its_run_timeline_in_headless_chromium(env: RegsyncEnv, tmp_path: Path) -> None:
    write_history(utcnow().replace(microsecond=0) - dt.timedelta(hours=5))
    html = tmp_path / "report.html"

    done = regsync(env, "report", "compliance", "--since", "12h", "--html", "--output", str(html))

    assert done.returncode == 0, done.stderr
    page = html.read_text(encoding="utf-8")
    svg = re.search(r'<svg id="run-timeline".*?</svg>', page, re.S)
    assert svg is not None and "http" not in page.replace(
        "http://www.w3.org/2000/svg", ""
    )  # no external assets
    assert svg.group(0).count('class="run"') == 4 and svg.group(0).count('class="alert"') == 3
    image = read_png(screenshot(html, tmp_path / "report.png", tmp_path / "profile"), max_rows=450)
    plot = bounding_box(image, PLOT_RGB)
    assert plot is not None, "the chart's plot area is not on the screenshot"
    assert plot[2] - plot[0] > 500 and plot[3] - plot[1] >= 60, f"the plot area is too small: {plot}"
    inside = colours(image, plot)
    # Inside the plot: the failed (red), succeeded (green), partially failed (amber) run bars and alert markers.
    for name, rgb in {"failed": (198, 40, 40), "succeeded": (46, 125, 50), "partial": (249, 168, 37)}.items():
        assert count_near(inside, rgb) >= 30, f"no {name} run bar drawn in the chart"
    assert count_near(inside, (216, 27, 96)) >= 15, "no alert marker drawn in the chart"
