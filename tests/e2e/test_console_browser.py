"""Acceptance 1 and 4 of the web console, in headless Chromium (Debian's package, driven by Playwright).

An operator signs in with an API key, watches a run's progress change while a real ``celery worker`` process
works through it (no reload), opens the failures of the partially failed run, acknowledges an alert, approves
a change waiting in review, and signs out. The ledger and the audit log then show each action, with the key as
the actor. axe-core checks every page on the way. Screenshots go to ``tmp/artifacts/console``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright
from sqlalchemy import select

from tests.conftest import RegsyncEnv
from tests.e2e.browser import CHROMIUM_ARGS, REPO, axe_source, chromium_path, serious_violations, serve
from tests.integration.celery_cluster import ClusterEnv, celery_cluster, unique_queue
from worker.alerts.models import Alert, AlertKind, AlertStatus
from worker.api.app import create_app
from worker.api.keys import create_key
from worker.changes.events import Origin, ReviewItem, record_review
from worker.changes.models import ChangeEvent, ChangeOutcome, ChangeType
from worker.company import CompanyKey
from worker.connections.apply import apply_connection
from worker.connections.secrets import set_secret
from worker.connections.spec import parse_spec
from worker.infra.dispatch import CeleryDispatcher
from worker.ledger.audit import verify_chain
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent, Connection, RecordFailure, Run, RunStatus, utcnow
from worker.matching import store
from worker.matching.models import NameMatch
from worker.roles import Role
from worker.sandbox.stack import Stack, sandbox_stack
from worker.sync.runner import start_run

NAME = "lookhere"
ACCOUNTS = 120
ARTIFACTS = REPO / "tmp" / "artifacts" / "console"


@dataclass
class World:
    stack: Stack
    env: ClusterEnv
    directory: Path
    key: str
    key_id: int
    alert_id: int


def _seed_alert(now: dt.datetime) -> int:
    with session_scope() as session:
        connection_id = session.scalars(select(Connection.id).where(Connection.name == NAME)).one()
        alert = Alert(
            connection_id=connection_id, kind=AlertKind.RUN_FAILED.value, subject="nightly run failed",
            status=AlertStatus.OPEN.value, detected_at=now, opened_at=now,
            notify_by=now + dt.timedelta(minutes=41), details={},
        )  # fmt: skip
        session.add(alert)
        session.flush()
        return alert.id


@pytest.fixture
def world(
    env: RegsyncEnv, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    with sandbox_stack(tmp_path / "sandbox", ACCOUNTS) as stack:
        cluster_env = ClusterEnv(
            database_url=env.database_url, redis_url=redis_url, secret_key=env.secret_key,
            ca_bundle=stack.ca.bundle_path, queue=unique_queue("regsync-console"), log_level="INFO",
        )  # fmt: skip
        cluster_env.apply(monkeypatch)
        data = stack.spec_data(NAME, "proff", requests_per_second=2000, burst=200)
        data["sync"] = {"chunk_size": 10}
        with session_scope() as session:
            apply_connection(session, parse_spec(data), "alice")
            set_secret(session, NAME, "salesforce_client_secret", stack.client_secret, "alice")
            set_secret(session, NAME, "registry_token", stack.registry_token, "alice")
            key = create_key(session, connections=[NAME], role=Role.OPERATOR, actor="alice")
        yield World(stack, cluster_env, tmp_path, key.secret, key.id, 0)


def _writable(stack: Stack, run_id: int) -> list[tuple[str, dict[str, Any]]]:
    """Records the run wrote, so not ones the org's validation rule refuses."""
    with session_scope() as session:
        refused = set(session.scalars(select(RecordFailure.record_id).where(RecordFailure.run_id == run_id)))
    return [(rid, a) for rid, a in stack.salesforce.snapshot().items() if rid not in refused]


def _seed_match(record_id: str) -> int:
    """One record waiting in name-match review, with two candidates."""
    with session_scope() as session:
        connection_id = session.scalars(select(Connection.id).where(Connection.name == NAME)).one()
        candidates = [
            {"country": "NO", "org_number": number, "name": name, "legal_form": "AS", "score": score}
            for number, name, score in (
                ("923609016", "Lookhere AS", 0.81),
                ("914778271", "Lookhere Nord AS", 0.8),
            )
        ]
        store.save(session, [{
            "connection_id": connection_id, "run_id": None, "object": "Account", "record_id": record_id,
            "country": "NO", "name_hash": "0" * 64, "status": "review", "reason": "several candidates",
            "crm_name": "Lookhere", "candidates": candidates, "org_number": None,
        }])  # fmt: skip
    with session_scope() as session:
        return session.scalars(select(NameMatch.id).where(NameMatch.record_id == record_id)).one()


def _seed_review(stack: Stack, run_id: int) -> int:
    """One name change waiting for a person, against the CRM's value as it stands after the run."""
    record_id, account = _writable(stack, run_id)[0]
    with session_scope() as session:
        connection_id = session.scalars(select(Connection.id).where(Connection.name == NAME)).one()
        origin = Origin("run:full", "1", ChangeType.CHANGED, None)
        item = ReviewItem(
            origin, record_id, CompanyKey("NO", "923609016"), "name", account["Name"], "Lookhere AS"
        )
        record_review(session, connection_id, [item])
        return session.scalars(select(ChangeEvent.id).where(ChangeEvent.connection_id == connection_id)).one()


class Checked:
    """The browser page, with an accessibility check and a screenshot at each step."""

    def __init__(self, page: Page, axe: str) -> None:
        self.page, self.axe = page, axe
        self.violations: dict[str, list[str]] = {}
        self.shots: list[Path] = []

    def look(self, name: str) -> None:
        self.violations[f"{name} {self.page.url}"] = serious_violations(self.page, self.axe)
        path = ARTIFACTS / f"{len(self.shots) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)


def _watch_progress(checked: Checked, base: str, run_id: int) -> tuple[str, str]:
    """The run page's chunk count before and after it changed, with no page load in between."""
    page = checked.page
    page.goto(f"{base}/console/runs/{run_id}")
    page.evaluate("() => { window.__sameDocument = 42; }")
    before = page.inner_text(".chunks")
    assert page.get_attribute("[data-final]", "data-final") == "false", "the run ended before the page loaded"
    page.wait_for_function(
        "t => document.querySelector('.chunks').textContent !== t", arg=before, timeout=30_000
    )
    checked.look("run-progress")
    after = page.inner_text(".chunks")
    page.wait_for_selector('[data-final="true"]', timeout=60_000)
    assert page.evaluate("() => window.__sameDocument") == 42  # polled in place: never reloaded
    assert page.inner_text("[data-run-status]") == "partially failed"  # the heading's badge followed
    return before, after


def _browse(checked: Checked, base: str, world: World, run_id: int, ids: tuple[int, int]) -> dict[str, Any]:
    event_id, match_id = ids
    page = checked.page
    page.goto(f"{base}/console/runs/{run_id}")
    checked.look("run-finished")
    page.get_by_role("link", name=f"All failures of run {run_id}").click()
    failures = page.locator("tbody tr").count()
    checked.look("failures")
    page.goto(f"{base}/console/alerts")
    deadline = page.inner_text(f"#alert-{world.alert_id}")
    checked.look("alerts-open")
    page.get_by_role("button", name=f"Acknowledge alert {world.alert_id}").click()
    acked = page.inner_text("[role=status]")
    checked.look("alerts-acknowledged")
    page.goto(f"{base}/console/connections/{NAME}/review")
    checked.look("review-waiting")
    page.get_by_role("button", name=f"Approve change {event_id}").click()
    approved = page.inner_text("[role=status]")
    checked.look("review-approved")
    page.get_by_role(
        "button", name=f"Approve name match {match_id}"
    ).click()  # the best candidate, preselected
    matched = page.inner_text("[role=status]")
    for path, name in ((f"/connections/{NAME}/runs?status=partially_failed", "runs-filtered"),
                       (f"/connections/{NAME}/report", "report"), (f"/connections/{NAME}/audit", "audit")):  # fmt: skip
        page.goto(f"{base}/console{path}")
        checked.look(name)
    audit_text = page.inner_text("main")
    page.get_by_role("button", name="Sign out").click()
    signed_out = page.inner_text("main")
    checked.look("signed-out")
    page.goto(f"{base}/console/connections")
    return {"failures": failures, "deadline": deadline, "acked": acked, "approved": approved, "matched": matched,
            "audit": audit_text, "signed_out": signed_out, "after_sign_out": page.url}  # fmt: skip


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_operator_follows_a_run_acts_on_it_and_signs_out_in_headless_chromium(world: World) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    axe = axe_source()
    world.stack.salesforce.latency_s = 0.25  # a chunk takes about a second: progress is there to be seen
    app = create_app()
    with (
        celery_cluster(world.env, world.directory / "workers", 1),
        serve(app) as base,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 800}, timezone_id="Europe/Oslo")
        checked = Checked(page, axe)
        page.goto(f"{base}/console/login")
        checked.look("sign-in")
        page.get_by_label("API key").fill(world.key)
        page.get_by_role("button", name="Sign in").click()
        checked.look("connections")
        run_id = start_run(NAME, CeleryDispatcher(), triggered_by="console-test")
        before, after = _watch_progress(checked, base, run_id)
        event_id = _seed_review(
            world.stack, run_id
        )  # after the run: its close evaluates the connection's alerts
        match_id = _seed_match(_writable(world.stack, run_id)[1][0])
        world.alert_id = _seed_alert(utcnow())
        seen = _browse(checked, base, world, run_id, (event_id, match_id))
        page.set_viewport_size({"width": 390, "height": 844})  # a phone
        page.goto(f"{base}/console/login")
        checked.look("phone-sign-in")
        browser.close()

    actor = f"apikey:{world.key_id}"
    with session_scope() as session:
        run = session.get(Run, run_id)
        alert = session.get(Alert, world.alert_id)
        event = session.get(ChangeEvent, event_id)
        match = session.get(NameMatch, match_id)
        audit = session.execute(
            select(AuditEvent.action, AuditEvent.target).where(AuditEvent.actor == actor)
        ).all()
        chain_ok = verify_chain(session).ok
        failure_rows = len(
            session.scalars(select(RecordFailure.id).where(RecordFailure.run_id == run_id)).all()
        )
    assert run is not None and alert is not None and event is not None
    # Progress moved while the page sat there; the run then ended partially failed.
    assert before != after, (before, after)
    assert run.status == RunStatus.PARTIALLY_FAILED.value and run.failed > 0
    assert seen["failures"] == failure_rows >= run.failed  # every failure and notice row, on one page
    # The alert's deadline as a person reads it, then acknowledged by this key.
    assert "notify by" in seen["deadline"] and "(in 4" in seen["deadline"], seen["deadline"]
    assert "Acknowledged" in seen["acked"]
    assert (alert.status, alert.acknowledged_by) == (AlertStatus.ACKNOWLEDGED.value, actor)
    # The change approved by this key and written to Salesforce.
    assert "Approved" in seen["approved"]
    assert (event.outcome, event.decided_by) == (ChangeOutcome.APPROVED.value, actor)
    assert world.stack.salesforce.snapshot()[str(event.record_id)]["Name"] == "Lookhere AS"
    # The name match approved by this key: the best candidate's org number written.
    assert "Approved: the chosen candidate" in seen["matched"] and match is not None
    assert (match.status, match.org_number, match.decided_by) == ("approved", "923609016", actor)
    assert world.stack.salesforce.snapshot()[match.record_id]["Org_Number__c"] == "923609016"
    # The audit log holds both actions with the key as actor, and the chain still verifies.
    assert {
        ("alert.ack", f"connection:{NAME}/alert:{world.alert_id}"),
        ("change.approve", f"connection:{NAME}"),
        ("name_match.approve", f"connection:{NAME}/match:{match_id}"),
    } <= set(audit)
    assert chain_ok and "Chain verified" in seen["audit"] and "alert.ack" in seen["audit"]
    # Signed out: the console sends the browser back to sign in.
    assert "You are signed out." in seen["signed_out"] and seen["after_sign_out"].endswith("/console/login")
    # Accessibility: no critical or serious axe-core violation on any page.
    assert {page: found for page, found in checked.violations.items() if found} == {}
    assert len(checked.shots) == 14 and all(shot.stat().st_size > 5000 for shot in checked.shots)
    assert world.key not in "".join(str(v) for v in seen.values())
