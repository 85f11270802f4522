"""The audit chain anchored off the ledger: `audit verify --anchor` detects deleted newest events and forged
anchors; a SIEM export's audit_event lines serve as an anchor too."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import delete, func, select
from typer.testing import CliRunner

from tests.conftest import RegsyncEnv
from worker.alerts.siem import audit_event
from worker.cli.main import app
from worker.ledger.anchor import head_record
from worker.ledger.audit import append_event
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent, utcnow


def _events(count: int) -> None:
    with session_scope() as session:
        for n in range(count):
            append_event(session, actor="alice", action="test.act", target=f"t{n}")


def _verify(anchor: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["audit", "verify", "--anchor", str(anchor)])
    return result.exit_code, result.output


def _anchor(path: Path) -> Path:
    with session_scope() as session:
        path.write_text(json.dumps(head_record(session, utcnow())) + "\n", encoding="utf-8")
    return path


def test_deleting_the_newest_events_is_detected_against_the_anchor(env: RegsyncEnv, tmp_path: Path) -> None:
    _events(5)
    anchor = _anchor(tmp_path / "anchor.jsonl")
    assert _verify(anchor)[0] == 0

    with session_scope() as session:
        newest = session.scalar(select(func.max(AuditEvent.id)))
        session.execute(delete(AuditEvent).where(AuditEvent.id >= (newest or 0) - 1))
    plain = CliRunner().invoke(app, ["audit", "verify"])
    code, output = _verify(anchor)

    assert plain.exit_code == 0, "without an anchor the truncated chain still looks intact"
    assert code == 1 and "newest events were deleted" in output


def test_a_forged_anchor_is_refused(env: RegsyncEnv, tmp_path: Path) -> None:
    _events(2)
    anchor = tmp_path / "anchor.jsonl"
    record = json.loads(_anchor(anchor).read_text())
    anchor.write_text(json.dumps({**record, "head_id": record["head_id"] - 1}) + "\n")

    code, output = _verify(anchor)

    assert code != 0 and "signature" in output


def test_a_siem_export_serves_as_the_anchor(env: RegsyncEnv, tmp_path: Path) -> None:
    _events(3)
    with session_scope() as session:
        lines = [json.dumps(audit_event(e)) for e in session.scalars(select(AuditEvent))]
        session.execute(
            delete(AuditEvent).where(AuditEvent.id == session.scalar(select(func.max(AuditEvent.id))))
        )
    export = tmp_path / "siem.jsonl"
    export.write_text("\n".join(["not json", *lines]) + "\n")

    code, output = _verify(export)

    assert code == 1 and "missing" in output
