"""`regsync purge` (data past the retention policy) and `regsync forget` (one company or record, everywhere).

Both are audited with counts, never values; `forget` names what it erased by a keyed hash.
"""

from __future__ import annotations

import typer

from worker.alerts.report import parse_since
from worker.cli.common import ACTOR_HELP, console, handles_errors, print_json, require_actor
from worker.errors import ConfigurationError
from worker.ledger.db import session_scope
from worker.ledger.models import utcnow
from worker.retention.erase import Erasure, forget_company, forget_record
from worker.retention.policy import PurgeKind
from worker.retention.purge import PurgeReport, PurgeRequest, purge_connection
from worker.retention.subjects import company_key, record_id

KINDS_HELP = f"Only these kinds (repeat the option): {', '.join(k.value for k in PurgeKind)}."


def _kinds(values: list[str] | None) -> frozenset[PurgeKind]:
    if not values:
        return frozenset(PurgeKind)
    try:
        return frozenset(PurgeKind(v) for v in values)
    except ValueError:
        raise ConfigurationError(
            f"--kind {values}: choose from {', '.join(k.value for k in PurgeKind)}"
        ) from None


def _show_purge(report: PurgeReport) -> None:
    verb = "would remove" if report.dry_run else "removed"
    for kind, count in report.counts.items():
        console.print(f"{kind:<18} {verb} {count}")
    console.print(f"total: {report.total}{' (dry run: nothing was deleted)' if report.dry_run else ''}")


@handles_errors
def purge_command(  # noqa: PLR0917 (typer: one parameter per option)
    connection: str = typer.Option(..., "--connection", help="The connection whose data to purge."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would go; delete nothing."),
    older_than: str | None = typer.Option(
        None, "--older-than", help="Age instead of the policy's, e.g. 30d."
    ),
    kind: list[str] | None = typer.Option(None, "--kind", help=KINDS_HELP),
    actor: str | None = typer.Option(None, "--actor", help=ACTOR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Delete what the connection's [retention] policy no longer keeps (run summaries and audit events stay)."""
    who = require_actor(actor)
    age = parse_since(older_than, "--older-than") if older_than else None
    request = PurgeRequest(kinds=_kinds(kind), older_than=age, dry_run=dry_run)
    report = purge_connection(connection, request, who, utcnow())
    print_json(report.as_dict()) if as_json else _show_purge(report)


@handles_errors
def forget_command(
    org_number: str | None = typer.Option(None, "--org-number", help="Country and number: NO/923609016."),
    record: str | None = typer.Option(None, "--record", help="A CRM record Id (15 or 18 characters)."),
    actor: str | None = typer.Option(None, "--actor", help=ACTOR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Erase every stored trace of one company or one CRM record (audited by a keyed hash, never the number)."""
    if (org_number is None) == (record is None):
        raise ConfigurationError("give exactly one of --org-number CC/NUMBER or --record ID")
    who = require_actor(actor)
    with session_scope() as session:
        if org_number is not None:
            erasure = forget_company(session, company_key(org_number), who)
        else:
            erasure = forget_record(session, record_id(record or ""), who)
    _show_erasure(erasure, as_json)


def _show_erasure(erasure: Erasure, as_json: bool) -> None:
    if as_json:
        print_json({"subject": erasure.subject, "counts": erasure.counts})
        return
    for kind, count in erasure.counts.items():
        console.print(f"{kind:<14} {count}")
    console.print(f"erasure {erasure.subject[:16]}… recorded in the audit log")


def register(app: typer.Typer) -> None:
    app.command("purge")(purge_command)
    app.command("forget")(forget_command)
