"""Status digests: one signed notice per changes run, to a real HTTPS webhook receiver, with counts and record
Ids, never values or org numbers (SQLite and PostgreSQL ledgers).

The run's rows are inserted the way a changes run's chunks record them (change events with field ``status``,
notice rows counted as ``registry_deleted``/``registry_inactive``); test_changes_surfaces_sandbox.py shows a
digest after a real changes run.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RegsyncEnv
from tests.connection_files import acme_toml
from tests.integration.alert_receivers import WebhookReceiver
from worker.changes.digest import send_digest
from worker.changes.models import ChangeEvent, ChangeOutcome, ChangeType
from worker.company import CompanyStatus
from worker.connections.apply import apply_connection
from worker.connections.secrets import set_secret
from worker.connections.spec import parse_spec
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent, RecordFailure, Run, RunKind, RunMode, RunStatus, utcnow
from worker.ledger.runs import create_run
from worker.registry.outcomes import RegistryNotice
from worker.sandbox.tls import SandboxCA

KEY = "whsec-" + "d" * 32
ORG = {letter: f"9{index:08d}" for index, letter in enumerate("ABCDEFGH")}


def rid(letter: str) -> str:
    return f"001000000000{letter}AAA"[:18].ljust(18, "A")


@pytest.fixture
def receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    ca = SandboxCA(tmp_path / "ca")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.bundle_path))
    server = WebhookReceiver(ca, KEY).start()
    yield server
    server.stop()


def install(url: str) -> int:
    alerts = f"""
[alerts.channels.credit-hook]
type = "webhook"
url = "{url}"
timeout_s = 5
"""
    spec = parse_spec(tomllib.loads(acme_toml('status = { field = "Registry_Status__c" }', extra=alerts)))
    with session_scope() as session:
        connection_id = apply_connection(session, spec, "admin").connection_id
    with session_scope() as session:
        set_secret(session, "acme", "webhook_signing_key", KEY, "admin")
    return connection_id


def closed_run(connection_id: int, mode: RunMode = RunMode.CHANGES) -> int:
    with session_scope() as session:
        run = create_run(session, connection_id, kind=RunKind.SCHEDULED, triggered_by="schedule", mode=mode)
        run.status, run.started_at, run.finished_at = RunStatus.SUCCEEDED.value, utcnow(), utcnow()
        return run.id


def event(
    run: int, connection_id: int, letter: str, field: str, outcome: ChangeOutcome, *, kind: ChangeType
) -> ChangeEvent:
    return ChangeEvent(
        connection_id=connection_id,
        run_id=run,
        source="feed:brreg:NO",
        item_id=f"2051{ord(letter)}",
        change_type=kind.value,
        country="NO",
        org_number=ORG[letter],
        record_id=rid(letter),
        field=field,
        outcome=outcome.value,
        old_value="Old Name AS" if outcome is ChangeOutcome.REVIEW else None,
        new_value="Secret New Name AS" if outcome is ChangeOutcome.REVIEW else None,
    )


def notice(run_id: int, letter: str, code: RegistryNotice, status: CompanyStatus) -> RecordFailure:
    return RecordFailure(
        run_id=run_id,
        record_id=rid(letter),
        org_number=ORG[letter],
        error_code=code.value,
        message=code.message(status),
    )


def fill(run_id: int, connection_id: int) -> None:
    """A: bankrupt, B: dissolved, C: in liquidation (dissolved), D: deleted by a Sletting item (status not
    among its events), E: bankrupt waiting in review, F: active again (no notice), G: inactive already (a notice
    but no status change: not news), H: name changed only."""
    synced, changed = ChangeOutcome.SYNCED, ChangeType.CHANGED
    rows = [
        event(run_id, connection_id, "A", "status", synced, kind=changed),
        event(run_id, connection_id, "A", "name", synced, kind=changed),
        event(run_id, connection_id, "B", "status", synced, kind=ChangeType.UNKNOWN),
        event(run_id, connection_id, "C", "status", synced, kind=changed),
        event(run_id, connection_id, "D", "name", ChangeOutcome.SKIPPED, kind=ChangeType.DELETED),
        event(run_id, connection_id, "E", "status", ChangeOutcome.REVIEW, kind=changed),
        event(run_id, connection_id, "F", "status", synced, kind=changed),
        event(run_id, connection_id, "G", "name", synced, kind=changed),
        event(run_id, connection_id, "H", "name", synced, kind=changed),
        notice(run_id, "A", RegistryNotice.INACTIVE, CompanyStatus.BANKRUPT),
        notice(run_id, "B", RegistryNotice.INACTIVE, CompanyStatus.DISSOLVED),
        notice(run_id, "C", RegistryNotice.INACTIVE, CompanyStatus.LIQUIDATION),
        notice(run_id, "D", RegistryNotice.DELETED, CompanyStatus.DELETED),
        notice(run_id, "E", RegistryNotice.INACTIVE, CompanyStatus.BANKRUPT),
        notice(run_id, "G", RegistryNotice.INACTIVE, CompanyStatus.INACTIVE),
    ]
    with session_scope() as session:
        session.add_all(rows)


def test_one_digest_per_changes_run_with_counts_and_record_ids_only(
    env: RegsyncEnv, receiver: WebhookReceiver
) -> None:
    connection_id = install(receiver.url)
    run_id = closed_run(connection_id)
    fill(run_id, connection_id)

    first = send_digest(run_id)
    again = send_digest(run_id)  # a redelivered run-closed hook

    assert (first, again) == (True, False)
    (hook,) = receiver.received
    assert hook.signature_ok
    assert hook.payload["event"] == "changes.status_digest" and hook.payload["run_id"] == run_id
    assert hook.payload["counts"] == {"bankrupt": 2, "dissolved": 2, "deleted": 1, "inactive": 0}
    assert hook.payload["records"] == {
        "bankrupt": sorted([rid("A"), rid("E")]),
        "dissolved": sorted([rid("B"), rid("C")]),
        "deleted": [rid("D")],
    }
    body = hook.body.decode()
    assert not any(org in body for org in ORG.values()), "no org numbers in a digest"
    assert "Name AS" not in body and "Secret" not in body, "no values in a digest"
    with session_scope() as session:
        audits = [
            (a.target, a.after)
            for a in session.query(AuditEvent).filter(AuditEvent.action == "changes.digest")
        ]
    assert audits == [(f"run:{run_id}", {"counts": hook.payload["counts"]})]


def test_the_run_closed_hook_sends_it_and_a_full_run_or_a_quiet_run_sends_none(
    env: RegsyncEnv, receiver: WebhookReceiver
) -> None:
    from tasks.jobs import _status_digest

    connection_id = install(receiver.url)
    full = closed_run(connection_id, RunMode.FULL)
    fill(full, connection_id)
    quiet = closed_run(connection_id)
    changes = closed_run(connection_id)
    fill(changes, connection_id)

    for run_id in (full, quiet, changes):
        _status_digest(send_digest, run_id)

    assert [hook.payload["run_id"] for hook in receiver.received] == [changes]


def test_a_run_still_going_sends_nothing_yet(env: RegsyncEnv, receiver: WebhookReceiver) -> None:
    connection_id = install(receiver.url)
    run_id = closed_run(connection_id)
    fill(run_id, connection_id)
    with session_scope() as session:
        run = session.get_one(Run, run_id)
        run.status, run.finished_at = RunStatus.RUNNING.value, None

    assert send_digest(run_id, now=dt.datetime.now(dt.UTC)) is False
    assert receiver.received == []


def test_a_connection_without_channels_gets_no_digest_and_none_is_claimed(env: RegsyncEnv) -> None:
    spec = parse_spec(tomllib.loads(acme_toml('status = { field = "Registry_Status__c" }')))
    with session_scope() as session:
        connection_id = apply_connection(session, spec, "admin").connection_id
    run_id = closed_run(connection_id)
    fill(run_id, connection_id)

    assert send_digest(run_id) is False
    with session_scope() as session:
        assert session.query(AuditEvent).filter(AuditEvent.action == "changes.digest").count() == 0
