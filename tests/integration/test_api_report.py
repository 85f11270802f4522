"""Issue 12: `GET /v1/connections/{c}/report/compliance` serves the compliance report of one connection, scoped by
the key (another tenant's connection is 404, and nothing of it is in the answer), with the period, the audit-chain
head and who is told; its errors speak the API's words (``since``, not ``--since``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from tests.integration.api_world import B_ALERT_ID, B_MARKERS, B_RUN_IDS, A, B, World, build_world, ledger_env
from tests.unit.fakes import FakeDispatcher
from worker.api.app import create_app
from worker.api.throttle import MemoryThrottle
from worker.ledger.audit import verify_chain
from worker.ledger.db import session_scope
from worker.retention.policy import RetentionSpec

REPORT = "/v1/connections/{}/report/compliance"


@dataclass
class Api:
    world: World
    client: TestClient

    def get(self, path: str, role: str | None = "viewer") -> tuple[int, dict[str, object], str]:
        headers = {"Authorization": f"Bearer {self.world.keys[role]}"} if role else {}
        response = self.client.get(path, headers=headers)
        return response.status_code, response.json(), response.headers["content-type"]


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    with ledger_env(REGSYNC_REDIS_URL="redis://127.0.0.1:1/0"):
        world = build_world()
        app = create_app(throttle=MemoryThrottle(10_000), dispatcher=FakeDispatcher())
        with TestClient(app, raise_server_exceptions=False) as client:
            yield Api(world, client)


def test_a_viewer_gets_the_report_of_its_connection_with_period_chain_head_and_channels(api: Api) -> None:
    status, report, kind = api.get(REPORT.format(A) + "?since=30d")

    assert (status, kind) == (200, "application/json"), report
    period = report["period"]
    assert isinstance(period, dict) and period["seconds"] == 30 * 86400
    with session_scope() as session:
        head = verify_chain(session).head_hash
    chain = report["audit_chain"]
    assert isinstance(chain, dict) and chain["head_hash"] == head is not None and chain["ok"] is True
    assert "checked" not in chain  # how many events the installation's chain holds is not a tenant's business
    assert report["connections"] == [
        {
            "name": A,
            "enabled": False,
            "notifications": {"status": "none", "channels": []},
            "enabled_without_notices": None,
            "runs": report["connections"][0]["runs"],  # type: ignore[index]
            "retention": {"policy": RetentionSpec().model_dump(mode="json"), "last_purge": None},
        }
    ]
    assert report["erasures"] == 0
    attention = report["attention"]
    assert isinstance(attention, list)
    listed = {r["id"]: r for r in attention}
    row = listed[api.world.a_failed_run]  # partially failed, with record failures of code X
    assert row["status"] == "partially_failed" and "codes: X (" in row["reason"], row


def test_nothing_of_another_tenant_is_in_the_report(api: Api) -> None:
    response = api.client.get(
        REPORT.format(A), headers={"Authorization": f"Bearer {api.world.keys['admin']}"}
    )

    assert response.status_code == 200
    for marker in (*B_MARKERS, *(str(run_id) for run_id in B_RUN_IDS), str(B_ALERT_ID)):
        assert marker not in response.text, marker


def test_another_tenants_connection_is_404(api: Api) -> None:
    status, body, kind = api.get(REPORT.format(B))

    assert (status, kind) == (404, "application/problem+json")
    assert B not in str(body)


def test_a_bad_period_is_refused_in_the_apis_words(api: Api) -> None:
    for since, expected in (("abc", 422), ("0d", 400), ("999999999w", 400)):
        status, body, kind = api.get(REPORT.format(A) + f"?since={since}")
        assert (status, kind) == (expected, "application/problem+json"), (since, body)
        assert "--" not in str(body), body


def test_the_report_needs_a_key(api: Api) -> None:
    status, _body, kind = api.get(REPORT.format(A), role=None)

    assert (status, kind) == (401, "application/problem+json")
