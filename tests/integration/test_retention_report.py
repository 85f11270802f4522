"""The compliance report states each connection's retention policy, its last purge with counts, and the
erasures in the period (JSON and HTML)."""

from __future__ import annotations

import datetime as dt

from tests.conftest import RegsyncEnv
from tests.integration.retention_world import Trace, apply_acme, days_ago, seed
from worker.alerts.report import compliance_report
from worker.alerts.report_html import render_html
from worker.company import CompanyKey
from worker.ledger.db import session_scope
from worker.ledger.models import utcnow
from worker.retention.erase import forget_company
from worker.retention.purge import PurgeRequest, purge_connection


def test_the_report_shows_policy_last_purge_and_erasures(env: RegsyncEnv) -> None:
    connection_id = apply_acme("[retention]\nsamples_days = 3\n")
    seed(connection_id, days_ago(100), Trace("001000000000001AAA", "923609016"))
    purge_connection("acme", PurgeRequest(), "alice", utcnow())
    with session_scope() as session:
        forget_company(session, CompanyKey("NO", "974760673"), "dpo")

    with session_scope() as session:
        report = compliance_report(session, utcnow(), dt.timedelta(days=30))
    html = render_html(report)

    facts = report["connections"][0]["retention"]
    assert facts["policy"]["samples_days"] == 3 and facts["policy"]["run_summaries_days"] == 400
    assert facts["last_purge"]["actor"] == "alice" and facts["last_purge"]["counts"]["failures"] == 1
    assert report["erasures"] == 1
    assert "<h2>Retention</h2>" in html and "samples 3 d" in html and "failures 1" in html
    assert "Erasures in the period: 1" in html and "923609016" not in html
