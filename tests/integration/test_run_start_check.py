"""Issue 10: every run start re-checks the connection against Salesforce (planning, real clients over TLS).

A field deleted (here: made read-only) in Salesforce after the connection was applied stops the run at its start,
before any record is planned or written; excess rights of the integration user are reported in the log.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RegsyncEnv
from tests.integration.backfill_world import NAME, World, open_world
from worker.errors import MappingError
from worker.ledger.db import session_scope
from worker.ledger.views import show_run
from worker.sync.runner import start_run

pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)


@pytest.fixture
def world(env: RegsyncEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with open_world(tmp_path / "sandbox", monkeypatch, 50, validation_failures=0) as found:
        found.connect()
        yield found


def test_a_mapping_that_no_longer_fits_stops_the_run_at_its_start(world: World) -> None:
    world.stack.salesforce.alter_field("Legal_Form__c", updateable=False)  # an admin locked the field

    run_id = start_run(NAME, world.dispatch, triggered_by="tester")
    try:
        world.dispatch.drain()
    except (
        MappingError
    ) as exc:  # raised out of planning here; the run-lifecycle work (H1) fails the run with it
        assert "legal_form → 'Legal_Form__c' is not updateable" in exc.message
    with session_scope() as session:
        view = show_run(session, run_id)
    assert view["status"] in ("queued", "running", "failed"), view
    if view["status"] == "failed":
        assert view["error_code"] == "MAPPING" and "Legal_Form__c" in view["error"]
    assert view["planned"] == 0 and view["chunks_total"] == 0
    queries = [r.query["q"][0] for r in world.stack.salesforce.api_requests() if "q" in r.query]
    assert not [q for q in queries if " FROM Account" in q]  # not a single Account was read
    assert world.patches() == []


def test_excess_rights_are_reported_in_the_log_at_run_start(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.stack.salesforce.permissions.assign("Sales_Ops_Superuser", view_all_data=True)

    view = world.manual()

    assert view["status"] in ("succeeded", "partially_failed")
    assert (
        "preflight of demo: the integration user holds View All Data (from permission set 'Sales_Ops_Superuser')"
        in caplog.text
    )
