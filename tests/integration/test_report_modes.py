"""The compliance report counts changes runs like any other run, and says how many of each mode there were."""

from __future__ import annotations

import datetime as dt
import tomllib

from tests.conftest import RegsyncEnv
from tests.connection_files import acme_toml
from worker.alerts.report import compliance_report
from worker.alerts.report_html import render_html
from worker.alerts.report_text import render_text
from worker.connections.apply import apply_connection
from worker.connections.spec import parse_spec
from worker.ledger.db import session_scope
from worker.ledger.models import RunKind, RunMode, RunStatus, utcnow
from worker.ledger.runs import create_run


def test_the_report_counts_runs_by_mode(env: RegsyncEnv) -> None:
    with session_scope() as session:
        connection_id = apply_connection(
            session, parse_spec(tomllib.loads(acme_toml())), "alice"
        ).connection_id
    with session_scope() as session:
        for mode, status in (
            (RunMode.FULL, RunStatus.SUCCEEDED),
            (RunMode.CHANGES, RunStatus.SUCCEEDED),
            (RunMode.CHANGES, RunStatus.SUCCEEDED),
            (RunMode.CHANGES, RunStatus.FAILED),
        ):
            run = create_run(
                session, connection_id, kind=RunKind.SCHEDULED, triggered_by="schedule", mode=mode
            )
            run.status, run.started_at, run.finished_at = status.value, utcnow(), utcnow()

    with session_scope() as session:
        report = compliance_report(session, utcnow() + dt.timedelta(seconds=1), dt.timedelta(days=1))
    text = "\n".join(render_text(report))

    assert report["runs"]["total"] == 4
    assert report["runs"]["by_mode"] == {"full": 1, "changes": 3}
    assert report["runs"]["by_status"] == {"failed": 1, "succeeded": 3}
    assert "4 runs in this period (1 full, 3 changes): " in text
    assert "<th>Runs by mode</th><td>1 full, 3 changes</td>" in render_html(report)
