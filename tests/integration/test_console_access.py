"""Acceptance 2 and 3 of the web console: the role × route and tenant matrices derived from the console's routes,
CSRF on every form, the session cookie's flags, idle timeout and sign-out (PostgreSQL ledger, Redis sessions)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from fastapi import FastAPI
from sqlalchemy import select

from config.settings import reset_settings
from tests.conftest import claimed_redis
from tests.integration.api_world import B_ALERT_ID, B_MARKERS, B_RUN_IDS, A, B, World, build_world, ledger_env
from tests.integration.console_world import ACTION_FORM, Browser, console_routes
from tests.integration.test_api_roles import _seed_review, a_spec, seed_matches
from tests.unit.fakes import FakeDispatcher
from worker.api.app import create_app
from worker.api.throttle import MemoryThrottle
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent, Run
from worker.sandbox.stack import Stack, sandbox_stack


@dataclass(frozen=True)
class Entry:
    """A console route's row: the lowest role that may use it, and what its path names."""

    needs: str
    target: str = "connection"  # connection, run, alert, or none (the key's own overview)


#: Every console route. A route the console has and this lacks fails the first test, so none escapes the matrix.
MATRIX = {
    ("GET", "/console/connections"): Entry("viewer", "none"),
    ("GET", "/console/connections/{c}/runs"): Entry("viewer"),
    ("GET", "/console/connections/{c}/review"): Entry("viewer"),
    ("GET", "/console/connections/{c}/report"): Entry("viewer"),
    ("GET", "/console/connections/{c}/audit"): Entry("viewer"),
    ("GET", "/console/runs/{run_id}"): Entry("viewer", "run"),
    ("GET", "/console/runs/{run_id}/progress"): Entry("viewer", "run"),
    ("GET", "/console/runs/{run_id}/failures"): Entry("viewer", "run"),
    ("GET", "/console/alerts"): Entry("viewer", "none"),
    ("POST", "/console/runs/{run_id}/cancel"): Entry("operator", "run"),
    ("POST", "/console/runs/{run_id}/resume"): Entry("operator", "run"),
    ("POST", "/console/alerts/{alert_id}/ack"): Entry("operator", "alert"),
    ("POST", "/console/connections/{c}/review/approve"): Entry("operator"),
    ("POST", "/console/connections/{c}/review/reject"): Entry("operator"),
    ("POST", "/console/connections/{c}/review/matches/approve"): Entry("operator"),
    ("POST", "/console/connections/{c}/review/matches/reject"): Entry("operator"),
}
#: Routes before or around a session, each with where it is tested.
SESSIONLESS = {
    ("GET", "/console"): "a redirect to the connections page",
    ("GET", "/console/login"): "the sign-in form (test_sign_in_cookie_...)",
    ("POST", "/console/login"): "signing in (test_sign_in_cookie_..., test_posts_without_a_valid_csrf_...)",
    ("POST", "/console/logout"): "signing out (test_sign_out_...)",
}


@dataclass
class Console:
    app: FastAPI
    world: World
    events: dict[str, int]
    matches: dict[str, int]
    redis_url: str
    stack: Stack

    def browser(self, role: str | None = None, base_url: str = "http://localhost") -> Browser:
        browser = Browser(self.app, base_url)
        if role is not None:
            key = self.world.b_admin if role == "b_admin" else self.world.keys[role]
            assert browser.sign_in(key) == 303
        return browser


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with (
        claimed_redis() as redis_url,
        sandbox_stack(tmp_path_factory.mktemp("sandbox"), 20) as stack,
        pytest.MonkeyPatch.context() as patch,
        ledger_env(REGSYNC_REDIS_URL=redis_url, REGSYNC_SHARED_STATE="redis"),
    ):
        for name, value in stack.trust_env().items():
            patch.setenv(name, value)
        world = build_world(a_spec(stack), {"salesforce_client_secret": stack.client_secret})
        events = _seed_review(stack)
        matches = seed_matches(stack)
        app = create_app(throttle=MemoryThrottle(10_000), dispatcher=FakeDispatcher())
        yield Console(app, world, events, matches, redis_url, stack)


def _paths(template: str, world: World, *, tenant: str, role: str = "admin") -> str:
    values = {
        "c": A if tenant == "a" else B,
        "run_id": str(world.a_cancellable[role] if tenant == "a" else B_RUN_IDS[1]),
        "alert_id": str(world.a_alerts[role] if tenant == "a" else B_ALERT_ID),
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)


def test_every_console_route_is_in_the_matrix(console: Console) -> None:
    routes = console_routes(console.app)
    assert routes - SESSIONLESS.keys() - MATRIX.keys() == set(), "a console route has no row in the matrix"
    assert MATRIX.keys() - routes == set(), "the matrix names a route the console no longer has"
    assert SESSIONLESS.keys() <= routes


def _form_body(template: str, console: Console, tenant: str = "a") -> dict[str, str]:
    """A decision form's body: a change event, or a name match, of the tenant the path names."""
    if "/review/matches/" in template:
        return {"one": str(console.matches["admin:approve" if tenant == "a" else "b"])}
    if "/review/" in template:
        return {"one": str(console.events["approve" if tenant == "a" else "b"])}
    return {}


def test_viewer_sees_no_action_control_and_every_action_post_is_403(console: Console) -> None:
    viewer, operator = console.browser("viewer"), console.browser("operator")
    pages = [
        f"/console/runs/{console.world.a_queued_run}",  # running: an operator may cancel it
        "/console/alerts",
        f"/console/connections/{A}/review",
    ]
    for path in pages:
        status, html = viewer.get(path)
        assert status == 200, path
        assert ACTION_FORM.findall(html) == [], path
        status, html = operator.get(path)
        assert status == 200 and ACTION_FORM.findall(html), (
            path
        )  # the same page shows controls to an operator
    for (method, template), entry in sorted(MATRIX.items()):
        if entry.needs == "viewer":
            continue
        assert method == "POST"
        status, _ = viewer.post(
            _paths(template, console.world, tenant="a", role="viewer"), _form_body(template, console)
        )
        assert status == 403, template
    with session_scope() as session:
        assert session.get(Run, console.world.a_cancellable["viewer"]).status == "queued"  # type: ignore[union-attr]


def test_every_console_url_of_connection_b_is_404_for_a_key_of_a(console: Console) -> None:
    admin = console.browser("admin")
    seen: list[str] = []
    for (method, template), entry in sorted(MATRIX.items()):
        if entry.target == "none":
            continue
        path = _paths(template, console.world, tenant="b")
        if method == "GET":
            status, html = admin.get(path)
        else:
            status, html = admin.post(path, _form_body(template, console, "b"))
        assert status == 404, (method, path)
        seen.append(html)
    for path in ("/console/connections", "/console/alerts", "/console/alerts?show=past"):
        status, html = admin.get(path)
        assert status == 200
        seen.append(html)
    everything = "\n".join(seen)
    for marker in (*B_MARKERS, *(str(run_id) for run_id in B_RUN_IDS), str(B_ALERT_ID)):
        assert marker not in everything, marker
    b_admin = console.browser("b_admin")  # the markers are real: B's own key sees B's run page
    assert b_admin.get(f"/console/runs/{B_RUN_IDS[0]}")[0] == 200


def test_posts_without_a_valid_csrf_token_are_403_and_change_nothing(console: Console) -> None:
    operator = console.browser("operator")
    run_id = console.world.a_cancellable["operator"]
    assert operator.post(f"/console/runs/{run_id}/cancel", csrf=False)[0] == 403
    assert operator.post(f"/console/runs/{run_id}/cancel", {"csrf": "forged"}, csrf=False)[0] == 403
    assert operator.post("/console/logout", csrf=False)[0] == 403
    with session_scope() as session:
        assert session.get(Run, run_id).status == "queued"  # type: ignore[union-attr]
    assert operator.get("/console/connections")[0] == 200  # still signed in: the forged sign-out did nothing
    anonymous = Browser(console.app)
    anonymous.client.get("/console/login")
    answer = anonymous.client.post("/console/login", data={"api_key": console.world.keys["admin"]})
    assert answer.status_code == 403 and "regsync_console=" not in answer.headers.get("set-cookie", "")
    status, _ = operator.post(f"/console/runs/{run_id}/cancel")  # with the token, the same post works
    assert status == 303
    with session_scope() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "run.cancel", AuditEvent.target == f"run:{run_id}")
        ).one()
    assert event.actor.startswith("apikey:")


def test_sign_in_cookie_is_httponly_strict_and_secure_outside_localhost(console: Console) -> None:
    key = console.world.keys["viewer"]
    for base_url, secure in (("http://localhost", False), ("https://console.example.org", True)):
        browser = Browser(console.app, base_url)
        form = browser.client.get("/console/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token
        answer = browser.client.post("/console/login", data={"api_key": key, "csrf": token.group(1)})
        assert answer.status_code == 303
        cookies = [value for name, value in answer.headers.multi_items() if name == "set-cookie"]
        session = next(c for c in cookies if c.startswith("regsync_console="))
        flags = {part.strip().lower() for part in session.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/console"} <= flags, session
        assert ("secure" in flags) is secure, session
        assert key not in session and key[4:20] not in answer.text
    client = redis.Redis.from_url(console.redis_url)
    stored = "".join(str(client.get(name)) for name in client.scan_iter("regsync:console:session:*"))
    assert '"key_id"' in stored and key not in stored  # Redis holds the key's id, never the key


def test_an_idle_session_is_signed_out_and_activity_keeps_it(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGSYNC_CONSOLE_IDLE_MINUTES", "0.025")  # 1.5 s
    reset_settings()
    try:
        app = create_app(throttle=MemoryThrottle(10_000), dispatcher=FakeDispatcher())
    finally:
        monkeypatch.delenv("REGSYNC_CONSOLE_IDLE_MINUTES")
        reset_settings()
    browser = Browser(app)
    assert browser.sign_in(console.world.keys["viewer"]) == 303
    for _ in range(3):  # 3 × 0.8 s: longer than the timeout in all, but never idle for that long
        time.sleep(0.8)
        assert browser.get("/console/alerts")[0] == 200
    time.sleep(2.0)
    answer = browser.client.get("/console/alerts")
    assert (answer.status_code, answer.headers["location"]) == (303, "/console/login")


def test_sign_out_ends_the_session_and_its_cookie_no_longer_works(console: Console) -> None:
    browser = console.browser("viewer")
    token = browser.client.cookies.get("regsync_console")
    assert browser.post("/console/logout")[0] == 303
    assert browser.client.get("/console/connections").status_code == 303
    replay = Browser(console.app)
    replay.client.cookies.set("regsync_console", str(token), domain="localhost", path="/console")
    assert replay.client.get("/console/connections").status_code == 303
    status, html = Browser(console.app).get("/console/login?out=1")
    assert status == 200 and "signed out" in html


def test_operator_acknowledges_an_alert_through_the_console_as_the_api_would(console: Console) -> None:
    operator = console.browser("operator")
    alert_id = console.world.a_alerts["operator"]
    status, _ = operator.post(f"/console/alerts/{alert_id}/ack")
    assert status == 303
    status, html = operator.get("/console/alerts")
    assert f'id="alert-{alert_id}"' in html and "acknowledged" in html
    assert operator.post(f"/console/alerts/{alert_id}/ack")[0] == 409  # as the API: acknowledged already
    with session_scope() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "alert.ack")).all()[-1]
    assert event.target == f"connection:{A}/alert:{alert_id}" and event.actor.startswith("apikey:")


def test_the_report_page_shows_who_is_told_and_the_retention_policy(console: Console) -> None:
    status, html = console.browser("viewer").get(f"/console/connections/{A}/report")
    assert status == 200
    assert "Who is told" in html and "Retention" in html
    assert "samples 7 d" in html and "run_summaries 400 d" in html  # the defaults of [retention]
    assert "Erasures in the period: 0" in html


def _match(match_id: int) -> tuple[str, str | None, str | None]:
    from worker.matching.models import NameMatch

    with session_scope() as session:
        row = session.get(NameMatch, match_id)
        assert row is not None
        return row.status, row.org_number, row.decided_by


def test_name_matches_wait_on_the_review_page_with_candidates_and_scores(console: Console) -> None:
    viewer, operator = console.browser("viewer"), console.browser("operator")
    status, html = viewer.get(f"/console/connections/{A}/review")
    row = re.search(rf'<tr id="match-{console.matches["approve"]}">(.*?)</tr>', html, re.S)
    assert status == 200 and row, html
    assert "Kandidat Holding" in row.group(1) and "923609016 Kandidat 0 AS (AS) · 0.80" in row.group(1)
    assert "914778271 Kandidat 1 AS (AS) · 0.79" in row.group(1) and "radio" not in row.group(1)
    assert f'id="match-{console.matches["b"]}"' not in html
    status, html = operator.get(f"/console/connections/{A}/review")
    assert f'aria-label="Approve name match {console.matches["approve"]}"' in html
    assert f'name="pick-{console.matches["approve"]}" value="914778271"' in html


def test_operator_approves_the_chosen_candidate_and_rejects_in_bulk_through_the_console(
    console: Console,
) -> None:
    operator = console.browser("operator")
    chosen, bulk = console.matches["approve"], [console.matches["reject"], console.matches["operator:reject"]]
    form = {"one": str(chosen), f"pick-{chosen}": "914778271", f"pick-{bulk[0]}": "923609016"}
    status, _ = operator.post(f"/console/connections/{A}/review/matches/approve", form)
    assert status == 303
    assert _match(chosen)[:2] == ("approved", "914778271")  # the ticked runner-up, not the best
    assert _match(bulk[0])[0] == "review"  # only the row whose button was pressed
    record = _record_of(chosen)
    assert console.stack.salesforce.snapshot()[record]["Org_Number__c"] == "914778271"
    status, html = operator.post(
        f"/console/connections/{A}/review/matches/reject", {"match_ids": ",".join(map(str, bulk))}
    )
    assert status == 422  # one field per ticked box, as a browser sends them
    answer = operator.client.post(
        f"/console/connections/{A}/review/matches/reject",
        data={"match_ids": [str(i) for i in bulk], "csrf": operator.csrf},
    )
    assert answer.status_code == 303 and answer.headers["location"].endswith("?said=unmatched")
    assert [_match(i)[0] for i in bulk] == ["rejected", "rejected"]
    assert all(console.stack.salesforce.writes[_record_of(i)] == 0 for i in bulk)
    with session_scope() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action.like("name_match.%"))).all()
    targets = {e.target: (e.action, e.actor) for e in events}
    for match_id, action in ((chosen, "approve"), (bulk[0], "reject"), (bulk[1], "reject")):
        decided = targets[f"connection:{A}/match:{match_id}"]
        assert decided[0] == f"name_match.{action}" and decided[1].startswith("apikey:")
    status, html = operator.get(f"/console/connections/{A}/audit")
    assert f"connection:{A}/match:{chosen}" in html  # on the connection's own audit page


def test_a_form_naming_another_tenants_match_is_404_and_decides_none_of_it(console: Console) -> None:
    admin = console.browser("admin")
    mine, theirs = console.matches["admin:reject"], console.matches["b"]
    answer = admin.client.post(
        f"/console/connections/{A}/review/matches/reject",
        data={"match_ids": [str(mine), str(theirs)], "csrf": admin.csrf},
    )
    assert answer.status_code == 404
    assert _match(mine)[0] == "review" and _match(theirs)[0] == "review"  # checked before any decision


def _record_of(match_id: int) -> str:
    from worker.matching.models import NameMatch

    with session_scope() as session:
        row = session.get(NameMatch, match_id)
        assert row is not None
        return row.record_id


def test_no_console_page_holds_a_key_a_secret_or_the_session_token(console: Console) -> None:
    """Every page an admin can open, with data in it: no API key, no Salesforce secret, no registry token, no
    REGSYNC_SECRET_KEY and no session token (the cookie's value) is ever rendered."""
    import os

    admin = console.browser("admin")
    session_token = admin.client.cookies.get("regsync_console")
    secrets = [
        *console.world.keys.values(),
        console.world.b_admin,
        console.stack.client_secret,
        console.stack.registry_token,
        os.environ.get("REGSYNC_SECRET_KEY", ""),
        str(session_token or ""),
    ]
    secrets = [s for s in secrets if len(s) >= 8]
    assert len(secrets) >= 6
    pages = [t for (method, t) in MATRIX if method == "GET"]
    for template in sorted(pages):
        status, html = admin.get(_paths(template, console.world, tenant="a"))
        assert status == 200, template
        assert [s for s in secrets if s in html] == [], template
