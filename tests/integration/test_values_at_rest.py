"""CRM values at rest: after a dry run and a change waiting in review, a ``pg_dump`` of the ledger holds no sampled
value and no review value in clear text, while the CLI and the API still show them decrypted; key rotation
re-encrypts them (and seals values stored before sealing existed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import JSON, String, column, make_url, select, table, text, update
from typer.testing import CliRunner

from config.settings import reset_settings
from tests.conftest import RegsyncEnv
from tests.integration.backfill_world import NAME, World, open_world
from tests.integration.retention_world import NOW, Trace, apply_acme, seed
from tests.unit.fakes import FakeDispatcher
from worker.api.app import create_app
from worker.api.keys import create_key
from worker.api.throttle import MemoryThrottle
from worker.backfill.options import BackfillOptions
from worker.changes import review
from worker.changes.models import ChangeEvent, ChangeOutcome
from worker.cli.main import app as cli
from worker.connections.apply import load_connection
from worker.errors import SecretKeyError
from worker.ledger.audit import verify_chain
from worker.ledger.backfill_models import RunFieldChange
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent
from worker.ledger.sealed import PREFIX
from worker.roles import Role
from worker.sandbox.stack import DEMO_MAPPING

MAPPING = {**DEMO_MAPPING, "name": {"field": "Name", "policy": "review"}}


@pytest.fixture
def world(env: RegsyncEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with open_world(tmp_path / "sandbox", monkeypatch, 80, validation_failures=0) as found:
        found.connect(mapping=MAPPING)
        yield found


def pg_dump(database_url: str) -> str:
    """The SQL dump of this test's own database (the ``pg_url`` fixture makes one per test)."""
    url = make_url(database_url)
    command = ["pg_dump", "--no-owner", "-h", str(url.host), "-p", str(url.port), "-U", str(url.username)]
    done = subprocess.run(
        [*command, str(url.database)], capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout


def _clear(values: list[Any]) -> set[str]:
    """The values worth searching for: text of 4+ characters with a letter, or numbers of 5+ digits."""
    found = {str(v).strip() for v in values if v is not None and not isinstance(v, bool)}
    return {v for v in found if (re.search(r"[A-Za-z]", v) and len(v) >= 4) or len(re.sub(r"\D", "", v)) >= 5}


def _review_events() -> list[Any]:
    with session_scope() as session:
        connection_id = load_connection(session, NAME)[0].id
        rows, _more = review.list_events(session, connection_id, status=ChangeOutcome.REVIEW, limit=10_000)
        session.expunge_all()
        return list(rows)


def _api_changes() -> list[dict[str, Any]]:
    with session_scope() as session:
        key = create_key(session, connections=[NAME], role=Role.VIEWER, actor="test").secret
    app = create_app(throttle=MemoryThrottle(1000), dispatcher=FakeDispatcher())
    with TestClient(app) as client:
        answer = client.get(
            f"/v1/connections/{NAME}/changes",
            params={"status": "review", "limit": 200},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump is not installed")
@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_a_ledger_dump_holds_no_sample_and_no_review_value_in_clear_text(
    world: World, env: RegsyncEnv
) -> None:
    before = world.stack.salesforce.snapshot()
    vocabulary = pg_dump(env.database_url)  # schema and connection only: CHECK lists hold "active" etc.
    dry = world.backfill(BackfillOptions(dry_run=True))
    samples = [s for row in dry["samples"] for s in row["samples"]]
    world.manual()
    waiting = _review_events()

    assert len(samples) >= 6 and 3 <= len(waiting) <= 100  # both kinds of value exist; one page of each list
    for row in dry["samples"]:  # read back decrypted (the CLI's preview reads the same function)
        for sample in row["samples"]:
            assert before[sample["record_id"]][row["field"]] == sample["old"]
    for event in waiting:
        assert event.old_value == before[str(event.record_id)]["Name"] != event.new_value
    needles = _clear([s[k] for s in samples for k in ("old", "new")])
    needles |= _clear([v for e in waiting for v in (e.old_value, e.new_value)])
    needles = {v for v in needles if v not in vocabulary}
    assert len(needles) >= 6

    dump = pg_dump(env.database_url)

    assert "COPY public.run_field_changes" in dump and "COPY public.change_events" in dump
    assert waiting[0].org_number in dump  # a plain column is found: the scan would see clear text
    assert sorted(v for v in needles if v in dump) == []
    assert dump.count(PREFIX) >= len(dry["samples"]) + 2 * len(waiting)

    listed = CliRunner().invoke(cli, ["changes", "list", NAME, "--status", "review", "--json"])
    assert listed.exit_code == 0, listed.output
    shown = {
        item["id"]: (item["old_value"], item["new_value"]) for item in json.loads(listed.stdout)["items"]
    }
    served = {item["id"]: (item["old_value"], item["new_value"]) for item in _api_changes()}
    expected = {event.id: (event.old_value, event.new_value) for event in waiting}
    assert shown == served == expected


TRACE = Trace("001000000000001AAA", "923609016", name="Kari Nordmann ENK")
LEGACY = "Legacy Plain AS"


def _use_keys(monkeypatch: pytest.MonkeyPatch, *keys: str) -> None:
    monkeypatch.setenv("REGSYNC_SECRET_KEY", ",".join(keys))
    reset_settings()


def _values() -> list[Any]:
    with session_scope() as session:
        samples = session.scalars(select(RunFieldChange.samples)).all()
        events = session.execute(
            select(ChangeEvent.old_value, ChangeEvent.new_value).order_by(ChangeEvent.id)
        )
        return [*samples, *(tuple(row) for row in events)]


def _stored() -> list[str]:
    """The columns' text as the database holds it (no decryption)."""
    with session_scope() as session:
        rows = session.execute(
            text(
                "SELECT CAST(samples AS TEXT) FROM run_field_changes UNION ALL "
                "SELECT CAST(old_value AS TEXT) FROM change_events WHERE outcome = 'review' UNION ALL "
                "SELECT CAST(new_value AS TEXT) FROM change_events WHERE outcome = 'review'"
            )
        )
        return [str(row[0]) for row in rows]


def _plant_legacy_value() -> None:
    """A review value written before values were sealed: plain JSON."""
    events = table("change_events", column("outcome", String), column("new_value", JSON))
    with session_scope() as session:
        session.execute(update(events).where(events.c.outcome == "review").values(new_value=LEGACY))


def test_rotation_reencrypts_values_so_the_old_key_can_go(
    env: RegsyncEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(apply_acme(), NOW, TRACE)
    _plant_legacy_value()
    written = _values()
    assert written[1:] == [(None, None), (TRACE.name, LEGACY)]  # sealed and legacy values read back alike
    new = Fernet.generate_key().decode("ascii")

    _use_keys(monkeypatch, new)
    with pytest.raises(SecretKeyError, match="CRM value"):
        _values()  # sealed with the old key: unreadable without it
    _use_keys(monkeypatch, new, env.secret_key)
    rotated = CliRunner().invoke(cli, ["secret", "rotate", "--actor", "alice"])
    assert rotated.exit_code == 0, rotated.output
    _use_keys(monkeypatch, new)

    assert _values() == written
    assert all(value.strip('"').startswith(PREFIX) for value in _stored())  # the legacy value is sealed now
    with session_scope() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "secret.rotate")).one()
        assert verify_chain(session).ok
    assert event.after == {"reencrypted": 0, "crm_values": 2}
