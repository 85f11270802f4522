"""Helpers (not a test module): inject errors at one stage of a run, on the wire, in front of the sandbox servers.

A :class:`FaultSwitch` sits between a sandbox server's socket and its routes (the servers run in the test process):
a request of the armed stage gets the armed error reply instead of the sandbox's answer, the first ``times`` such
requests or all of them. Every request still lands in the server's request log, so a test counts what regsync
sent. Nothing in the sandbox's own code changes: the faults are what a real Salesforce org or registry answers
(PROTOCOLS.md 3.1, 3.4; 1.5) and regsync cannot tell them from the real thing.

The ledger-commit stage is injected in PostgreSQL itself (:func:`fail_chunk_commits`): a trigger refuses to mark
a chunk done, with a serialization failure (transient) or a raised exception (permanent).
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text

from worker.ledger.db import session_scope
from worker.sandbox.tls import RecordedRequest, Reply, SandboxHTTPServer

_API = r"^/services/data/v\d+\.\d"
#: Which requests belong to which stage of a run.
STAGES: dict[str, Callable[[RecordedRequest], bool]] = {
    "token": lambda r: r.method == "POST" and r.path == "/services/oauth2/token",
    "describe": lambda r: bool(re.match(_API + r"/sobjects/\w+/describe/?$", r.path)),
    "query": lambda r: r.method == "GET" and bool(re.match(_API + r"/query/?$", r.path)),
    "query_more": lambda r: r.method == "GET" and bool(re.match(_API + r"/query/01g", r.path)),
    "reread": lambda r: r.method == "GET" and bool(re.match(_API + r"/composite/sobjects/\w+/?$", r.path)),
    "write": lambda r: r.method == "PATCH" and bool(re.match(_API + r"/composite/sobjects/?$", r.path)),
    "lookup": lambda r: r.method == "GET",  # on the registry server: every request is a lookup
}
SALESFORCE_STAGES = ("token", "describe", "query", "query_more", "reread", "write")


def salesforce_error(status: int, code: str, message: str) -> Reply:
    """A top-level REST error: a JSON array of ``{message, errorCode}`` (PROTOCOLS.md 3.4)."""
    return Reply(status, [{"message": message, "errorCode": code}])


def oauth_error(status: int, error: str, description: str) -> Reply:
    """A token endpoint refusal (PROTOCOLS.md 3.1)."""
    return Reply(status, {"error": error, "error_description": description})


#: Per stage: (a permanent error reply, a transient one).
SALESFORCE_FAULTS: dict[str, tuple[Reply, Reply]] = {
    "token": (
        oauth_error(400, "invalid_client", "invalid client credentials"),
        oauth_error(503, "temporarily_unavailable", "try again"),
    ),
    "describe": (
        salesforce_error(404, "NOT_FOUND", "The requested resource does not exist"),
        salesforce_error(503, "SERVER_UNAVAILABLE", "Service Unavailable"),
    ),
    "query": (
        salesforce_error(400, "INVALID_FIELD", "No such column 'Org_Number__c' on entity 'Account'"),
        salesforce_error(503, "SERVER_UNAVAILABLE", "Service Unavailable"),
    ),
    "query_more": (
        salesforce_error(403, "INSUFFICIENT_ACCESS", "insufficient access rights on object id"),
        salesforce_error(503, "SERVER_UNAVAILABLE", "Service Unavailable"),
    ),
    "reread": (
        salesforce_error(400, "INVALID_FIELD", "No such column 'Legal_Form__c' on sObject of type Account"),
        salesforce_error(503, "SERVER_UNAVAILABLE", "Service Unavailable"),
    ),
    "write": (
        salesforce_error(400, "INVALID_FIELD_FOR_INSERT_UPDATE", "Unable to create/update fields: Name."),
        salesforce_error(503, "SERVER_UNAVAILABLE", "Service Unavailable"),
    ),
}
REGISTRY_FAULTS = (Reply(401, {"message": "Invalid token"}), Reply(503, {"message": "Service Unavailable"}))


@dataclass
class _Armed:
    stage: str
    reply: Reply
    times: int | None  # None: every request of the stage


class FaultSwitch:
    """Wraps ``server``'s routes; :meth:`arm` a stage, and its requests get ``reply`` instead of the answer."""

    def __init__(self, server: SandboxHTTPServer) -> None:
        self._server = server
        self._route = server._handler
        self._lock = threading.Lock()
        self._armed: _Armed | None = None
        self.injected: Counter[str] = Counter()
        self.seen: Counter[str] = Counter()
        server._handler = self._dispatch

    def arm(self, stage: str, reply: Reply, times: int | None = None) -> None:
        with self._lock:
            self._armed = _Armed(stage, reply, times)

    def disarm(self) -> None:
        with self._lock:
            self._armed = None

    def restore(self) -> None:
        self._server._handler = self._route

    def _dispatch(self, request: RecordedRequest) -> Reply:
        with self._lock:
            for stage, matches in STAGES.items():
                if matches(request):
                    self.seen[stage] += 1
            armed = self._armed
            hit = armed is not None and STAGES[armed.stage](request)
            if hit and armed is not None and armed.times is not None:
                hit = self.injected[armed.stage] < armed.times
            if hit and armed is not None:
                self.injected[armed.stage] += 1
                return Reply(armed.reply.status, armed.reply.body, dict(armed.reply.headers))
        return self._route(request)


# --- the ledger-commit stage (PostgreSQL) -------------------------------------------------------------------

_TRIGGER = """
CREATE TABLE IF NOT EXISTS test_commit_faults (connection_id BIGINT PRIMARY KEY, sqlstate TEXT, times INT);
CREATE OR REPLACE FUNCTION test_refuse_chunk_done() RETURNS trigger AS $$
DECLARE fault RECORD; n BIGINT;
BEGIN
  IF NEW.status = 'done' AND OLD.status = 'running' THEN
    SELECT f.* INTO fault FROM test_commit_faults f JOIN runs r ON r.connection_id = f.connection_id
      WHERE r.id = NEW.run_id;
    IF FOUND THEN
      -- nextval() is not rolled back with the refused transaction: it counts the commits tried.
      n := nextval('test_commit_fault_' || fault.connection_id);
      IF fault.times IS NULL OR n <= fault.times THEN
        RAISE EXCEPTION 'injected ledger fault' USING ERRCODE = fault.sqlstate;
      END IF;
    END IF;
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS test_refuse_chunk_done ON chunks;
CREATE TRIGGER test_refuse_chunk_done BEFORE UPDATE ON chunks
  FOR EACH ROW EXECUTE FUNCTION test_refuse_chunk_done();
"""


def fail_chunk_commits(connection_id: int, sqlstate: str, times: int | None) -> None:
    """Make PostgreSQL refuse to record the connection's chunks as done: ``times`` times (None: always).

    ``40001`` (serialization_failure) is what a busy database answers and is worth a retry; ``P0001`` (a raised
    exception) stands for a refusal that a retry cannot fix. The chunk's counts, failures and write
    confirmations are one transaction with that UPDATE, so all of them roll back together.
    """
    with session_scope() as session:
        # The function body holds semicolons: the script goes to the driver whole.
        session.connection().exec_driver_sql(_TRIGGER)
        session.connection().exec_driver_sql(
            f"CREATE SEQUENCE IF NOT EXISTS test_commit_fault_{int(connection_id)}"
        )
        session.execute(
            text("INSERT INTO test_commit_faults VALUES (:cid, :sqlstate, :times)"),
            {"cid": connection_id, "sqlstate": sqlstate, "times": times},
        )


def commit_faults_injected(connection_id: int, times: int | None) -> int:
    """How many chunk commits the trigger refused (``times`` as given to :func:`fail_chunk_commits`)."""
    sequence = f"test_commit_fault_{int(connection_id)}"
    with session_scope() as session:
        row = session.connection().exec_driver_sql(f"SELECT last_value, is_called FROM {sequence}").one()
    tried = int(row[0]) if row[1] else 0
    return tried if times is None else min(tried, times)
