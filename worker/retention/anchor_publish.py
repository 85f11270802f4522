"""Publish the signed audit-chain head (worker.ledger.anchor) to the SIEM feed and to the log, on beat."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from sqlalchemy.orm import Session

from worker.alerts.siem import sinks_from_settings
from worker.ledger.anchor import head_record

log = logging.getLogger(__name__)


def publish(session: Session, now: dt.datetime) -> dict[str, Any] | None:
    """Write the head record to every SIEM sink and to the log (head id and hash only: nothing secret)."""
    record = head_record(session, now)
    if record is None:
        return None
    line = json.dumps(record, sort_keys=True, separators=(",", ":"))
    for sink in sinks_from_settings():
        sink.write([line])
    log.info("audit anchor: head event %s hash %s", record["head_id"], record["head_hash"])
    return record
