"""Acceptance 1 of the HTTP API: role × endpoint matrix, and a key of connection A never sees a byte of B."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.integration.api_world import B_ALERT_ID, B_MARKERS, B_RUN_IDS, A, B, World, build_world, ledger_env
from tests.unit.fakes import FakeDispatcher
from worker.api.app import create_app
from worker.api.throttle import MemoryThrottle
from worker.changes.models import ChangeEvent, ChangeType
from worker.connections.apply import apply_connection
from worker.connections.spec import parse_spec
from worker.ledger.db import session_scope
from worker.sandbox.stack import Stack, sandbox_stack

ROLES = ("viewer", "operator", "admin")
ANONYMOUS = ("none", "malformed", "unknown", "revoked")


@dataclass(frozen=True)
class Call:
    """One endpoint, with a target of connection A and the same call aimed at connection B."""

    name: str
    method: str
    path_a: str
    path_b: str
    needs: str  # the lowest role that may make this call
    body: dict[str, object] | None = None
    ok: int = 200


@dataclass(frozen=True)
class Entry:
    """A route's row of the matrix: the lowest role that may call it, and how to call it."""

    needs: str
    body: dict[str, object] | None = None
    ok: int = 200
    run: str = "failed"  # which of A's runs a {run_id} names: "failed", or the role's own "cancellable" one
    query_b: str = ""  # for a route with no connection in its path: how the same call aims at B
    event: str | None = None  # a decision's body names this change event of A (see A_EVENTS)
    match: str | None = (
        None  # a {match_id} names the role's own name match of A for this decision (A_MATCHES)
    )


#: Every route that takes an API key, by (method, path template). A route the app has and this lacks fails
#: test_every_route_of_the_app_is_in_the_role_matrix, so a new route cannot escape the matrix.
MATRIX = {
    ("GET", "/v1/connections/{c}/runs"): Entry("viewer"),
    ("GET", "/v1/runs/{run_id}"): Entry("viewer"),
    ("GET", "/v1/runs/{run_id}/failures"): Entry("viewer"),
    ("POST", "/v1/connections/{c}/backfills"): Entry("operator", {"dry_run": True}, 202),
    ("POST", "/v1/runs/{run_id}/cancel"): Entry("operator", run="cancellable"),
    ("GET", "/v1/alerts"): Entry("viewer", query_b=f"?connection={B}"),
    ("GET", "/v1/connections/{c}/settings"): Entry("viewer"),
    ("PATCH", "/v1/connections/{c}/settings"): Entry(
        "admin", {"enabled": True, "without_notices": True, "alerts": {"notice_period_minutes": 120}}
    ),
    ("POST", "/v1/alerts/{alert_id}/ack"): Entry("operator"),
    ("GET", "/v1/connections/{c}/report/compliance"): Entry("viewer"),
    ("POST", "/v1/connections/{c}/retention/purge"): Entry("admin", body={"dry_run": True}),
    ("GET", "/v1/connections/{c}/changes"): Entry("viewer"),
    ("POST", "/v1/connections/{c}/changes/approve"): Entry("operator", event="approve"),
    ("POST", "/v1/connections/{c}/changes/reject"): Entry("operator", event="reject"),
    ("GET", "/v1/connections/{c}/matches"): Entry("viewer"),
    ("POST", "/v1/matches/{match_id}/approve"): Entry("operator", {"index": 1}, match="approve"),
    ("POST", "/v1/matches/{match_id}/reject"): Entry("operator", match="reject"),
}
#: Change events waiting in review, seeded by the ``api`` fixture: A's to approve and to reject, and B's.
A_EVENTS: dict[str, int] = {}
#: Name matches waiting in review, seeded by the ``api`` fixture: per role, one of A's to approve and one to reject
#: (``operator:approve``…; a decided match answers 409), two more of A's, and B's (``b``).
A_MATCHES: dict[str, int] = {}
#: Routes that take no API key, each with the reason (and where it is tested instead).
UNKEYED = {
    ("GET", "/v1/openapi.json"): "the published contract (test_api_schemathesis)",
    ("GET", "/v1/health"): "for load balancers (test_api_limits)",
    ("GET", "/metrics"): "the operator's metrics token, not an API key (test_api_limits)",
}


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path template) the app routes, HEAD aside."""
    return {
        (method, route.path or "")
        for route in iter_route_contexts(app.routes)
        for method in getattr(route, "methods", None) or ()
        if method != "HEAD"
    }


def _fill(template: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)


def calls(app: FastAPI, world: World, who: str) -> list[Call]:
    """The matrix's calls, one per keyed route of ``app``, for the role ``who``."""
    runs_a = {
        "failed": world.a_failed_run,
        "cancellable": world.a_cancellable.get(who, world.a_cancellable["admin"]),
    }
    runs_b = {"failed": B_RUN_IDS[0], "cancellable": B_RUN_IDS[1]}
    a_alert = world.a_alerts.get(who, world.a_alerts["admin"])
    found = []
    for method, template in sorted(app_routes(app) - UNKEYED.keys()):
        entry = MATRIX[(method, template)]
        match = A_MATCHES.get(f"{who}:{entry.match}", A_MATCHES[f"admin:{entry.match or 'approve'}"])
        path_a = _fill(
            template,
            {"c": A, "run_id": str(runs_a[entry.run]), "alert_id": str(a_alert), "match_id": str(match)},
        )
        path_b = _fill(
            template,
            {
                "c": B, "run_id": str(runs_b[entry.run]), "alert_id": str(B_ALERT_ID),
                "match_id": str(A_MATCHES["b"]),
            },
        )  # fmt: skip
        name = f"{method} {template}"
        body: dict[str, object] | None = {"ids": [A_EVENTS[entry.event]]} if entry.event else entry.body
        found.append(Call(name, method, path_a, path_b + entry.query_b, entry.needs, body, entry.ok))
    return found


def test_every_route_of_the_app_is_in_the_role_matrix() -> None:
    routes = app_routes(create_app(throttle=MemoryThrottle(1), dispatcher=FakeDispatcher()))
    assert routes - UNKEYED.keys() - MATRIX.keys() == set(), "a route has no row in the role matrix"
    assert MATRIX.keys() - routes == set(), "the matrix names a route the app no longer has"
    assert UNKEYED.keys() <= routes


@dataclass
class Api:
    app: FastAPI
    client: TestClient
    world: World
    dispatcher: FakeDispatcher
    seen_by_a: list[bytes]
    stack: Stack

    def call(self, key: str | None, method: str, path: str, body: object = None) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        response = self.client.request(method, path, headers=headers, json=body)
        return response.status_code, response.content


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    # A points at a sandbox org over TLS, with its Salesforce credential set (brreg needs no registry token):
    # backfills may start, and enable checks the mapping and the user's rights as `regsync enable` does. B has
    # no secret at all.
    with (
        sandbox_stack(tmp_path_factory.mktemp("sandbox"), 20) as stack,
        pytest.MonkeyPatch.context() as patch,
        ledger_env(),
    ):
        for name, value in stack.trust_env().items():
            patch.setenv(name, value)
        world = build_world(a_spec(stack), {"salesforce_client_secret": stack.client_secret})
        A_EVENTS.update(_seed_review(stack))
        A_MATCHES.update(seed_matches(stack))
        dispatcher = FakeDispatcher()
        app = create_app(throttle=MemoryThrottle(10_000), dispatcher=dispatcher)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield Api(app, client, world, dispatcher, [], stack)


def _seed_review(stack: Stack) -> dict[str, int]:
    """Two of A's sandbox accounts with a name change waiting in review, and one of B's (B's org number is one
    of B's markers)."""
    from worker.changes.events import Origin, ReviewItem, record_review
    from worker.company import CompanyKey
    from worker.ledger.models import Connection

    accounts = list(stack.salesforce.snapshot().items())[:2]
    with session_scope() as session:
        ids = {c.name: c.id for c in session.query(Connection)}
        origin = Origin("run:full", "1", ChangeType.CHANGED, None)
        items = [
            ReviewItem(origin, record_id, CompanyKey("NO", "923609016"), "name", account["Name"], "Matrix AS")
            for record_id, account in accounts
        ]
        record_review(session, ids[A], items)
        record_review(
            session,
            ids[B],
            [ReviewItem(origin, "001BRAVOSECRET01", CompanyKey("NO", "912345678"), "name", "x", "y")],
        )
    with session_scope() as session:
        rows = session.execute(
            select(ChangeEvent.id, ChangeEvent.connection_id).order_by(ChangeEvent.id)
        ).all()
    a_ids = [event_id for event_id, connection_id in rows if connection_id == ids[A]]
    return {"approve": a_ids[0], "reject": a_ids[1], "b": next(e for e, c in rows if c == ids[B])}


def seed_matches(stack: Stack) -> dict[str, int]:
    """Name matches waiting in review, with two candidates each: A's on sandbox accounts (one per role and
    decision, then ``approve`` and ``reject`` for the decision tests), and B's (its record and org number are
    B's markers)."""
    from worker.ledger.models import Connection
    from worker.matching import store
    from worker.matching.models import NameMatch

    names = ["operator:approve", "operator:reject", "admin:approve", "admin:reject", "approve", "reject"]
    accounts = list(stack.salesforce.snapshot())[2 : 2 + len(names)]
    with session_scope() as session:
        ids = {c.name: c.id for c in session.query(Connection)}
        rows = [_match_row(ids[A], record_id, ("923609016", "914778271")) for record_id in accounts]
        store.save(session, [*rows, _match_row(ids[B], "001BRAVOSECRET01", ("912345678", "974760673"))])
    with session_scope() as session:
        found = {
            record_id: match_id
            for record_id, match_id in session.execute(select(NameMatch.record_id, NameMatch.id))
        }
    return {**{name: found[record_id] for name, record_id in zip(names, accounts, strict=True)},
            "b": found["001BRAVOSECRET01"]}  # fmt: skip


def _match_row(connection_id: int, record_id: str, numbers: tuple[str, str]) -> dict[str, object]:
    candidates = [
        {"country": "NO", "org_number": number, "name": f"Kandidat {n} AS", "legal_form": "AS",
         "postal_code": None, "city": None, "score": 0.8 - n / 100}
        for n, number in enumerate(numbers)
    ]  # fmt: skip
    return {
        "connection_id": connection_id, "run_id": None, "object": "Account", "record_id": record_id,
        "country": "NO", "name_hash": "0" * 64, "status": "review", "reason": "several candidates",
        "crm_name": "Kandidat Holding", "candidates": candidates, "org_number": None,
    }  # fmt: skip


def _key_for(world: World, who: str) -> str | None:
    return {
        "none": None,
        "malformed": "not-a-key",
        "unknown": "rsk_" + "x" * 43,
        "revoked": world.revoked,
    }.get(who, world.keys.get(who))


def _rank(role: str) -> int:
    return ROLES.index(role)


@pytest.mark.parametrize("who", ROLES + ANONYMOUS)
def test_role_matrix_allows_exactly_what_each_role_may_do(api: Api, who: str) -> None:
    key = _key_for(api.world, who)
    for call in calls(api.app, api.world, who):
        status_a, body_a = api.call(key, call.method, call.path_a, call.body)
        status_b, body_b = api.call(key, call.method, call.path_b, call.body)
        if who in ANONYMOUS:
            assert (status_a, status_b) == (401, 401), (who, call.name)
            continue
        expected_a = call.ok if _rank(who) >= _rank(call.needs) else 403
        assert status_a == expected_a, (who, call.name, body_a)
        assert status_b == 404, (who, call.name, body_b)  # not 403: B's existence is not revealed
        api.seen_by_a.extend([body_a, body_b])
    _assert_nothing_of_b(api.seen_by_a)


def _assert_nothing_of_b(bodies: list[bytes]) -> None:
    everything = b"\n".join(bodies)
    for marker in (*B_MARKERS, *(str(run_id) for run_id in B_RUN_IDS), str(B_ALERT_ID)):
        assert marker.encode() not in everything, marker


def test_a_key_of_a_reads_all_of_a_and_nothing_of_b(api: Api) -> None:
    key = api.world.keys["admin"]
    bodies = []
    for path in (
        f"/v1/connections/{A}/runs?limit=200",
        *(f"/v1/runs/{run_id}" for run_id in api.world.a_runs),
        *(f"/v1/runs/{run_id}/failures" for run_id in api.world.a_runs),
        f"/v1/runs/{B_RUN_IDS[0]}",
        f"/v1/runs/{B_RUN_IDS[0]}/failures",
        f"/v1/connections/{B}/runs",
        f"/v1/connections/{B}/runs?status=running",
    ):
        status, body = api.call(key, "GET", path)
        assert status in (200, 404), path
        bodies.append(body)
    listed = json.loads(bodies[0])["items"]
    assert set(api.world.a_runs) <= {run["id"] for run in listed}  # plus backfills other tests started
    assert {run["connection"] for run in listed} == {A}
    _assert_nothing_of_b(bodies)


def test_b_admin_sees_b_but_not_a(api: Api) -> None:
    status, body = api.call(api.world.b_admin, "GET", f"/v1/runs/{B_RUN_IDS[0]}/failures")
    assert status == 200 and b"001BRAVOSECRET01" in body  # the markers are real: B's own key sees them
    status, _ = api.call(api.world.b_admin, "GET", f"/v1/runs/{api.world.a_failed_run}")
    assert status == 404


def test_operator_backfill_queues_a_backfill_run_of_a_and_sends_it_to_planning(api: Api) -> None:
    body = {"dry_run": True, "ids": ["001000000000001", "001000000000002"], "fields": ["name"]}
    status, raw = api.call(api.world.keys["operator"], "POST", f"/v1/connections/{A}/backfills", body)
    assert status == 202, raw
    run = json.loads(raw)
    assert (run["connection"], run["kind"], run["status"], run["dry_run"]) == (A, "backfill", "queued", True)
    assert run["options"] == {"dry_run": True, "ids": 2, "fields": ["name"]}  # the ids list only as a count
    assert run["field_changes"] == []
    assert api.dispatcher.plans[-1] == run["id"]


def test_backfill_options_that_do_not_fit_the_connection_are_422_and_start_nothing(api: Api) -> None:
    planned = len(api.dispatcher.plans)
    for body in (
        {"fields": ["not_mapped"]},
        {"country": "SE"},  # A only holds NO records
        {"ids": ["001000000000001XYZ"]},  # checksum does not match
        {"only_failed_run": B_RUN_IDS[0]},  # B's run: the same answer as a run that does not exist
        {"only_failed_run": 999_999_999},
    ):
        status, raw = api.call(api.world.keys["operator"], "POST", f"/v1/connections/{A}/backfills", body)
        assert status == 422 and json.loads(raw)["code"] == "INVALID_FILTER", (body, raw)
        if "only_failed_run" in body:
            expected = f"only_failed_run: this connection has no run {body['only_failed_run']}"
            assert json.loads(raw)["detail"] == expected
    assert len(api.dispatcher.plans) == planned


def test_cancel_of_a_queued_run_cancels_it_is_audited_and_a_second_cancel_conflicts(api: Api) -> None:
    from sqlalchemy import select

    from worker.ledger.db import session_scope
    from worker.ledger.models import AuditEvent, Run

    run_id = api.world.a_cancellable["operator"]
    status, body = api.call(api.world.keys["admin"], "POST", f"/v1/runs/{run_id}/cancel")
    if status == 409:  # the matrix test cancelled it already
        status, body = 200, b'{"before": "queued", "chunks_dropped": 0}'
    assert status == 200 and json.loads(body)["before"] == "queued"
    with session_scope() as session:
        assert session.get(Run, run_id).status == "cancelled"  # type: ignore[union-attr]
        targets = list(session.scalars(select(AuditEvent.target).where(AuditEvent.action == "run.cancel")))
    assert f"run:{run_id}" in targets
    status, body = api.call(api.world.keys["operator"], "POST", f"/v1/runs/{run_id}/cancel")
    assert status == 409 and json.loads(body)["code"] == "STATE_CONFLICT"


def test_enable_and_backfill_of_a_connection_without_its_secret_are_409_naming_it(api: Api) -> None:
    planned = len(api.dispatcher.plans)
    for method, path, body in (
        ("PATCH", f"/v1/connections/{B}/settings", {"enabled": True}),
        ("POST", f"/v1/connections/{B}/backfills", {"dry_run": True}),
    ):
        status, raw = api.call(api.world.b_admin, method, path, body)
        error = json.loads(raw)
        assert (status, error["code"]) == (409, "SECRET_MISSING"), raw
        assert f"connection {B} cannot run: salesforce_client_secret not set" in error["detail"]
    status, raw = api.call(api.world.b_admin, "GET", f"/v1/connections/{B}/settings")
    assert status == 200 and json.loads(raw)["enabled"] is False
    assert len(api.dispatcher.plans) == planned


def test_admin_settings_change_is_applied_and_audited(api: Api) -> None:
    from sqlalchemy import select

    from worker.ledger.db import session_scope
    from worker.ledger.models import AuditEvent

    key = api.world.keys["admin"]
    status, body = api.call(
        key, "PATCH", f"/v1/connections/{A}/settings", {"alerts": {"notice_period_minutes": 90}}
    )
    assert status == 200 and json.loads(body)["alerts"]["notice_period_minutes"] == 90
    status, body = api.call(
        key, "PATCH", f"/v1/connections/{A}/settings", {"alerts": {"notice_period_minutes": 4321}}
    )
    assert status == 422  # GDPR Art. 33: 72 hours at most
    with session_scope() as session:
        actions = set(session.scalars(select(AuditEvent.action).where(AuditEvent.actor.like("apikey:%"))))
    assert {"alerts.settings", "connection.enable"} <= actions


def a_spec(stack: Stack, **salesforce: object) -> dict[str, Any]:
    """A's connection file: the sandbox org and brreg, every record taken as Norwegian (A holds NO records only)."""
    data = stack.spec_data(A, provider="brreg")
    sf = {key: value for key, value in data["salesforce"].items() if key != "country_field"}
    data["salesforce"] = {**sf, "country": "NO", **salesforce}
    return data


def _reapply_a(api: Api, **salesforce: object) -> None:
    data = a_spec(api.stack, **salesforce)
    with session_scope() as session:
        apply_connection(session, parse_spec(data), "test")


def test_enable_checks_least_privilege_and_the_mapping_as_the_cli_does(api: Api) -> None:
    key = api.world.keys["admin"]
    path = f"/v1/connections/{A}/settings"
    api.call(key, "PATCH", path, {"enabled": False})
    set_id = api.stack.salesforce.permissions.assign("Api_Admin_Bundle", modify_all_data=True)
    try:
        _reapply_a(api, require_least_privilege=True)
        refused_status, refused = api.call(key, "PATCH", path, {"enabled": True})
        _reapply_a(api, org_number_field="No_Such_Field__c")
        unfit_status, unfit = api.call(key, "PATCH", path, {"enabled": True})
    finally:
        api.stack.salesforce.permissions.unassign(set_id)
        _reapply_a(api)
    status, settings = api.call(key, "GET", path)

    error = json.loads(refused)
    assert (refused_status, error["code"]) == (422, "LEAST_PRIVILEGE"), refused
    assert "Modify All Data" in error["detail"] and "Api_Admin_Bundle" in error["detail"]
    assert (unfit_status, json.loads(unfit)["code"]) == (422, "MAPPING"), unfit
    assert "No_Such_Field__c" in json.loads(unfit)["detail"]
    assert status == 200 and json.loads(settings)["enabled"] is False  # neither refused enable took effect
    assert (
        api.call(key, "PATCH", path, {"enabled": True, "without_notices": True})[0] == 200
    )  # the lenient, fitting connection enables (it has no alert channel, so it says so)


def test_change_decisions_see_only_their_connections_events(api: Api) -> None:
    b_event = A_EVENTS["b"]
    for action in ("approve", "reject"):
        status, body = api.call(
            api.world.keys["admin"], "POST", f"/v1/connections/{A}/changes/{action}", {"ids": [b_event]}
        )
        assert status == 404 and json.loads(body)["code"] == "NOT_FOUND", body  # B's event: as if none
        status, body = api.call(
            api.world.b_admin, "POST", f"/v1/connections/{B}/changes/{action}", {"ids": [A_EVENTS["reject"]]}
        )
        assert status == 404, body  # and A's event is not B's (before B's missing secret is even looked at)
    status, body = api.call(api.world.keys["viewer"], "GET", f"/v1/connections/{A}/changes?status=review")
    listed = json.loads(body)["items"]
    assert status == 200 and b_event not in {item["id"] for item in listed}
    _assert_nothing_of_b([body])
    status, body = api.call(api.world.b_admin, "GET", f"/v1/connections/{B}/changes")
    assert [item["id"] for item in json.loads(body)["items"]] == [b_event]  # B's own key sees it
    status, body = api.call(
        api.world.keys["admin"], "POST", f"/v1/connections/{A}/changes/reject", {"ids": ["1"]}
    )
    assert status == 422  # strict body: an id is an integer


def _key_id(raw: str) -> int:
    from worker.api.keys import hash_key
    from worker.api.models import ApiKey

    with session_scope() as session:
        return int(session.scalars(select(ApiKey.id).where(ApiKey.key_hash == hash_key(raw))).one())


def test_match_approve_writes_the_chosen_org_number_reject_writes_nothing_both_audited(api: Api) -> None:
    from worker.ledger.models import AuditEvent

    operator = api.world.keys["operator"]
    status, body = api.call(api.world.keys["viewer"], "GET", f"/v1/connections/{A}/matches?status=review")
    waiting = {item["id"]: item for item in json.loads(body)["items"]}
    assert status == 200 and {A_MATCHES["approve"], A_MATCHES["reject"]} <= waiting.keys()
    chosen = waiting[A_MATCHES["approve"]]
    assert chosen["crm_name"] == "Kandidat Holding" and [c["score"] for c in chosen["candidates"]] == [
        0.8,
        0.79,
    ]
    record_a, record_r = chosen["record_id"], waiting[A_MATCHES["reject"]]["record_id"]
    held = api.stack.salesforce.snapshot()[record_r].get("Org_Number__c")

    both = {"org_number": "914778271", "index": 1}
    status, body = api.call(operator, "POST", f"/v1/matches/{A_MATCHES['approve']}/approve", both)
    assert (status, json.loads(body)["detail"]) == (
        409,
        "choose a candidate by its org number or by its index, not both",
    )
    assert api.call(operator, "POST", f"/v1/matches/{A_MATCHES['approve']}/approve", {"index": "1"})[0] == 422
    status, body = api.call(operator, "POST", f"/v1/matches/{A_MATCHES['reject']}/approve", {"index": 2})
    assert (status, json.loads(body)["code"]) == (409, "STATE_CONFLICT"), body  # two candidates: 0 and 1
    status, body = api.call(
        operator, "POST", f"/v1/matches/{A_MATCHES['approve']}/approve", {"org_number": "914778271"}
    )
    approved = json.loads(body)
    assert status == 200 and (approved["status"], approved["org_number"]) == ("approved", "914778271"), body
    assert approved["crm_name"] is None and approved["decided_by"] == f"apikey:{_key_id(operator)}"
    assert api.stack.salesforce.snapshot()[record_a]["Org_Number__c"] == "914778271"
    assert api.stack.salesforce.writes[record_a] == 1
    assert api.call(operator, "POST", f"/v1/matches/{A_MATCHES['approve']}/approve")[0] == 409  # decided

    status, body = api.call(operator, "POST", f"/v1/matches/{A_MATCHES['reject']}/reject")
    assert status == 200 and json.loads(body)["status"] == "rejected", body
    assert api.stack.salesforce.writes[record_r] == 0
    assert api.stack.salesforce.snapshot()[record_r].get("Org_Number__c") == held
    assert api.call(operator, "POST", f"/v1/matches/{A_MATCHES['reject']}/reject")[0] == 409

    with session_scope() as session:
        events = {
            e.action: e
            for e in session.scalars(select(AuditEvent).where(AuditEvent.action.like("name_match.%")))
            if (e.after or {}).get("match") in (A_MATCHES["approve"], A_MATCHES["reject"])
        }
    assert events.keys() == {"name_match.approve", "name_match.reject"}
    for event in events.values():
        assert event.actor == f"apikey:{_key_id(operator)}"
        assert event.target == f"connection:{A}/match:{event.after['match']}"  # type: ignore[index]
        assert event.context is not None and event.context["via"] == "api"
        assert event.context["api_key_id"] == str(_key_id(operator))
        assert "914778271" not in json.dumps([event.before, event.after])  # no org number, no name


def test_match_ids_and_lists_of_b_are_404_to_a_key_of_a_and_counted_as_probes(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api.app.state.throttle, "_clock", lambda: 0.0)  # one window for the probe count
    admin = api.world.keys["admin"]
    probes = f"foreign-id:{_key_id(admin)}"
    before = api.app.state.throttle.peek(probes)
    missing = api.call(admin, "POST", "/v1/matches/999999999/reject")
    answers = [
        api.call(admin, "POST", f"/v1/matches/{A_MATCHES['b']}/{action}") for action in ("approve", "reject")
    ]
    assert {status for status, _ in answers} == {404} and missing[0] == 404
    assert {json.loads(body)["detail"] for _, body in answers} == {json.loads(missing[1])["detail"]}
    assert api.app.state.throttle.peek(probes) == before + 2  # B's ids, not the id that exists nowhere
    listed = [api.call(admin, "GET", f"/v1/connections/{B}/matches{q}") for q in ("", "?status=review")]
    assert {status for status, _ in listed} == {404}
    status, body = api.call(api.world.keys["viewer"], "GET", f"/v1/connections/{A}/matches?limit=200")
    assert status == 200 and A_MATCHES["b"] not in {item["id"] for item in json.loads(body)["items"]}
    _assert_nothing_of_b([body, *(b for _, b in answers + listed)])
    status, body = api.call(api.world.b_admin, "GET", f"/v1/connections/{B}/matches")
    assert status == 200 and [item["id"] for item in json.loads(body)["items"]] == [A_MATCHES["b"]]
    for action in ("approve", "reject"):  # and A's matches are not B's
        assert (
            api.call(api.world.b_admin, "POST", f"/v1/matches/{A_MATCHES['admin:reject']}/{action}")[0] == 404
        )
    with session_scope() as session:
        from worker.matching.models import NameMatch

        assert session.get(NameMatch, A_MATCHES["b"]).status == "review"  # type: ignore[union-attr]


def test_match_list_pages_newest_first_with_a_cursor(api: Api) -> None:
    key = api.world.keys["viewer"]
    seen: list[int] = []
    cursor = ""
    while True:
        status, body = api.call(key, "GET", f"/v1/connections/{A}/matches?limit=4{cursor}")
        page = json.loads(body)
        assert status == 200 and len(page["items"]) <= 4
        seen.extend(item["id"] for item in page["items"])
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    mine = sorted((v for k, v in A_MATCHES.items() if k != "b"), reverse=True)
    assert seen == mine
