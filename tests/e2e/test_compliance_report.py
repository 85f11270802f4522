"""The compliance report (issue 5, acceptance 5; issue 12, acceptance 4), the CLI run as a subprocess:

- `--json` reports exactly the alerts this test created (a history written with a frozen clock: three alerts
  with known times to detect and to notify, one notice in time, one late, one never sent, one escalation and
  one recovery);
- the report of ONE connection after a real failed run (the production planner, a connection whose secrets were
  never set: SECRET_MISSING) shows the run in that connection's lane of the timeline and in the table of runs
  that need attention, both in the HTML and on a headless-Chromium screenshot; it says that nobody is told and
  that notices were waived at enable, flags a stuck run, and prints the period and the audit-chain head;
- text mode speaks in sentences, and the HTTP API serves the same report scoped by the key.

Set REGSYNC_TEST_REPORT_PNG to a path to keep the acceptance screenshot."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import time_machine

from config.settings import get_settings
from tests.conftest import RegsyncEnv, service_missing
from tests.e2e.png import bounding_box, colours, count_near, read_png
from tests.integration.alerts_world import TWO_STEP_ALERTS, FakeChannels, add_connection, add_run
from tests.integration.inprocess_runs import ListDispatcher
from worker.alerts.evaluator import evaluate
from worker.alerts.report_timeline import LANE_H
from worker.ledger.audit import append_event, verify_chain
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent, RunKind, utcnow
from worker.ledger.runs import create_run
from worker.sync.outcomes import PlanOutcome
from worker.sync.plan import plan_run

REPO = Path(__file__).resolve().parents[2]
MIN = dt.timedelta(minutes=1)
PAGER = {
    "notice_period_minutes": 60,
    "channels": {"pager": {"type": "webhook", "url": "https://pager.example/x"}},
}
PLOT_RGB = (0xEE, 0xF3, 0xFB)  # report_timeline.PLOT_COLOUR
FAILED_RGB = (0xC6, 0x28, 0x28)  # report_timeline.STATUS_COLOURS["failed"]
STUCK_RGB = (0xE6, 0x51, 0x00)  # report_timeline.STATUS_COLOURS["stuck"]
ATTENTION_RGB = (0xFF, 0xF3, 0xE0)  # report_html.ATTENTION_COLOUR
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
    verdicts = [(a["connection"], a["kind"], a["notice"]) for a in report["alert_list"]]
    assert verdicts == [
        ("alpha", "run_failed", "in time"),
        ("bravo", "run_partially_failed", "never sent"),
        ("charlie", "run_failed", "late"),
    ]


def test_text_and_html_list_each_alert_with_its_notice_deadline(env: RegsyncEnv, tmp_path: Path) -> None:
    write_history(utcnow().replace(microsecond=0) - dt.timedelta(hours=5))

    text = regsync(env, "report", "compliance", "--since", "1d").stdout
    html = tmp_path / "report.html"
    assert (
        regsync(env, "report", "compliance", "--since", "1d", "--html", "--output", str(html)).returncode == 0
    )

    rows = [re.split(r"\s{2,}", line) for line in text.splitlines() if re.match(r"^\d+\s+run_", line)]
    assert [(cells[1], cells[2], cells[-1]) for cells in rows] == [
        ("run_failed", "alpha", "in time"),
        ("run_partially_failed", "bravo", "never sent"),
        ("run_failed", "charlie", "late"),
    ], text
    page = html.read_text(encoding="utf-8")
    assert "<th>Notify by</th>" in page and page.count("<td>never sent</td>") == 1


def chromium() -> str:
    found = subprocess.run([str(REPO / "scripts" / "chromium")], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        service_missing(f"headless Chromium is needed for the report screenshot: {found.stderr.strip()}")
    return found.stdout.strip()


def screenshot(html: Path, png: Path, profile: Path, height: int = 1600) -> bytes:
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size=1200,{height}", html.as_uri(),
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
    drawn = svg.group(0)
    assert drawn.count('class="run"') + drawn.count('class="run problem"') == 4
    assert drawn.count('class="alert"') == 3
    image = read_png(screenshot(html, tmp_path / "report.png", tmp_path / "profile"))
    plot = bounding_box(image, PLOT_RGB)
    assert plot is not None, "the chart's plot area is not on the screenshot"
    assert plot[2] - plot[0] > 500 and plot[3] - plot[1] >= 60, f"the plot area is too small: {plot}"
    inside = colours(image, plot)
    # Inside the plot: the failed (red), succeeded (green), partially failed (amber) run bars and alert markers.
    for name, rgb in {"failed": (198, 40, 40), "succeeded": (46, 125, 50), "partial": (249, 168, 37)}.items():
        assert count_near(inside, rgb) >= 30, f"no {name} run bar drawn in the chart"
    assert count_near(inside, (216, 27, 96)) >= 15, "no alert marker drawn in the chart"


def real_failed_run(connection_id: int) -> int:
    """A run failed by the production planner: the connection's secrets were never set (SECRET_MISSING), so it
    fails before any remote call."""
    with session_scope() as session:
        run_id = create_run(session, connection_id, kind=RunKind.MANUAL, triggered_by="test").id
    outcome = plan_run(run_id, ListDispatcher(), settings=get_settings())
    assert outcome == PlanOutcome.FAILED, outcome
    return run_id


def waive_notices(name: str) -> None:
    """What `regsync enable NAME --without-notices` records (package B writes exactly this shape)."""
    with session_scope() as session:
        append_event(
            session,
            actor="cli:auditor-test",
            action="connection.enable",
            target=f"connection:{name}",
            before={"enabled": False},
            after={"enabled": True, "without_notices": True},
        )


@dataclass(frozen=True)
class OneConnection:
    failed: int
    stuck: int
    other_failed: int


def one_connection_history(now: dt.datetime) -> OneConnection:
    """alpha: no channel, enabled without notices, succeeded runs, a real failed run and a stuck one; bravo
    (another tenant, with a channel) has a failed run of its own that alpha's report must not show."""
    alpha, bravo = (
        add_connection("alpha", {"stall_minutes": 30}, enabled=True),
        add_connection("bravo", PAGER),
    )
    waive_notices("alpha")
    for days in (20, 12, 3):
        add_run(alpha, "succeeded", now - dt.timedelta(days=days), planned=10, updated=2,
                finished_at=now - dt.timedelta(days=days) + 40 * MIN)  # fmt: skip
    failed = real_failed_run(alpha)
    stuck = add_run(alpha, "running", now - dt.timedelta(days=1), heartbeat_at=now - dt.timedelta(hours=20))
    other = add_run(bravo, "failed", now - dt.timedelta(days=2), error_code="B_ONLY_CODE", error="bravo's")
    return OneConnection(failed, stuck, other)


def test_report_of_one_connection_shows_its_failed_run_in_its_lane_and_in_the_table(
    env: RegsyncEnv, tmp_path: Path
) -> None:
    runs = one_connection_history(utcnow())
    html = tmp_path / "alpha.html"

    done = regsync(
        env, "report", "compliance", "--connection", "alpha", "--since", "30d", "--html", "-o", str(html)
    )

    assert done.returncode == 0, done.stderr
    page = html.read_text(encoding="utf-8")
    assert "bravo" not in page and "B_ONLY_CODE" not in page and f'data-run="{runs.other_failed}"' not in page
    row = re.search(rf'<tr data-run="{runs.failed}">.*?</tr>', page, re.S)
    assert row is not None and "failed" in row.group(0) and "SECRET_MISSING" in row.group(0), (
        "not in the table"
    )
    stuck = re.search(rf'<tr data-run="{runs.stuck}">.*?</tr>', page, re.S)
    assert stuck is not None and "stuck" in stuck.group(0) and "no progress for 20 h" in stuck.group(0)
    assert f'class="run problem" data-run="{runs.failed}" data-status="failed"' in page
    assert "alpha has no notification channel: its alerts reach no one." in page
    assert "alpha was enabled without notices (--without-notices) by cli:auditor-test" in page
    with session_scope() as session:
        head = verify_chain(session).head_hash
    assert head and f"<code>{head}</code>" in page
    assert "@media print" in page and "size:A4" in page and "<title>" not in page.split("</head>")[1]

    png = tmp_path / "alpha.png"
    image = read_png(screenshot(html, png, tmp_path / "profile", height=1700))
    if os.environ.get("REGSYNC_TEST_REPORT_PNG"):
        shutil.copyfile(png, os.environ["REGSYNC_TEST_REPORT_PNG"])
    plot = bounding_box(image, PLOT_RGB)
    assert plot is not None, "the chart's plot area is not on the screenshot"
    lane = (plot[0], plot[1], plot[2], plot[1] + LANE_H)  # alpha is the only lane
    assert count_near(colours(image, lane), FAILED_RGB) >= 150, (
        "the failed run is not visible in alpha's lane"
    )
    assert count_near(colours(image, lane), STUCK_RGB) >= 150, "the stuck run is not visible in alpha's lane"
    table = bounding_box(image, ATTENTION_RGB)
    assert table is not None and table[1] > plot[3], (
        "the table of runs that need attention is not on the screenshot"
    )
    rows_below = (table[0], table[1], table[2], image.height)
    assert count_near(colours(image, rows_below), FAILED_RGB) >= 100, (
        "the failed run's row is not on the screenshot"
    )


def test_json_carries_period_chain_head_and_channel_status(env: RegsyncEnv) -> None:
    runs = one_connection_history(utcnow())

    done = regsync(env, "report", "compliance", "-c", "alpha", "-c", "bravo", "--since", "30d", "--json")

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["period"]["seconds"] == 30 * 86400 and report["period"]["since"] < report["period"]["until"]
    with session_scope() as session:
        assert report["audit_chain"]["head_hash"] == verify_chain(session).head_hash is not None
    by_name = {c["name"]: c for c in report["connections"]}
    assert by_name["alpha"]["notifications"] == {"status": "none", "channels": []}
    assert by_name["bravo"]["notifications"] == {
        "status": "configured", "channels": [{"name": "pager", "type": "webhook"}]
    }  # fmt: skip
    assert by_name["alpha"]["enabled_without_notices"]["actor"] == "cli:auditor-test"
    assert by_name["bravo"]["enabled_without_notices"] is None
    listed = {(r["id"], r["status"]) for r in report["attention"]}
    assert listed == {(runs.failed, "failed"), (runs.stuck, "stuck"), (runs.other_failed, "failed")}
    assert "https://pager.example" not in done.stdout  # a webhook URL may carry a token


def test_text_mode_speaks_in_sentences_not_reprs(env: RegsyncEnv) -> None:
    runs = one_connection_history(utcnow())

    done = regsync(env, "report", "compliance", "--connection", "alpha")

    assert done.returncode == 0, done.stderr
    text = done.stdout
    print(text)
    for repr_ in ("{", "}", "None", "[", "%)"):
        assert repr_ not in text, (repr_, text)
    assert "WARNING: alpha has no notification channel: its alerts reach no one." in text
    assert f"run {runs.failed} of alpha: failed" in text and "SECRET_MISSING" in text
    assert f"run {runs.stuck} of alpha: stuck" in text
    assert "No alert opened in this period." in text and "No notice was due in this period." in text
    assert re.search(r"Audit chain: intact, \d+ events checked; head hash [0-9a-f]{64}\.", text), text


def test_an_unknown_connection_is_one_line_and_exit_2(env: RegsyncEnv) -> None:
    add_connection("alpha")

    done = regsync(env, "report", "compliance", "--connection", "alpha", "--connection", "nope")

    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "no connection named 'nope'" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
