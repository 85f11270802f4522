"""Admin commands: apply and inspect connections, set and rotate secrets, read and verify the audit log.

Every change is audited with the acting admin (``--actor`` / REGSYNC_ACTOR). Secret values are read from
standard input only and are shown nowhere but masked.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker.cli.common import (
    EXIT_USAGE,
    console,
    err_console,
    fail,
    handles_errors,
    print_json,
    require_actor,
)
from worker.connections import secrets
from worker.connections.apply import apply_connection, flatten, load_connection
from worker.connections.preflight import PreflightReport, check_connection, missing_secrets, required_secrets
from worker.connections.spec import ConnectionSpec, load_spec
from worker.ledger.anchor import check_heads, read_heads
from worker.ledger.audit import verify_chain
from worker.ledger.db import session_scope
from worker.ledger.models import AuditEvent, Connection, Secret
from worker.retention.erase import ERASE_ACTION
from worker.text_input import escape_control, read_utf8

connection_app = typer.Typer(
    no_args_is_help=True, help="Apply and inspect connections (Salesforce org + registry)."
)
secret_app = typer.Typer(no_args_is_help=True, help="Set, generate and rotate encrypted secrets.")
audit_app = typer.Typer(no_args_is_help=True, help="Read and verify the hash-chained audit log.")

ActorOption = Annotated[
    str | None,
    typer.Option(
        "--actor",
        envvar="REGSYNC_ACTOR",
        metavar="NAME",
        help="Who performs this admin action, for the audit trail.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def say(text: str) -> None:
    """Print one plain line to stdout (no markup, no wrapping, control characters escaped)."""
    console.print(escape_control(text), markup=False, highlight=False, soft_wrap=True)


def note(text: str) -> None:
    """Print one plain line to stderr (control characters escaped)."""
    err_console.print(escape_control(text), markup=False, highlight=False, soft_wrap=True)


#: A ledger session (commit on success); session_scope already turns an unreachable or unmigrated ledger into
#: one readable LedgerError.
ledger = session_scope


# --- connection ------------------------------------------------------------------------------------------


def _stored_credential(spec: ConnectionSpec) -> tuple[str | None, list[str]]:
    """The stored Salesforce credential of the connection ``spec.name``, once every secret it needs is set
    (else None), and the names of those still missing."""
    with ledger() as session:
        connection = session.scalar(select(Connection).where(Connection.name == spec.name))
        if connection is None:
            return None, required_secrets(spec)
        missing = missing_secrets(session, connection.id)
        if missing:
            return None, missing
        return secrets.get_secret(session, connection.id, spec.secret_names()[0]), []


def report_preflight(report: PreflightReport) -> None:
    """Print what a preflight found: the verdict on stdout, each warning and excess right on stderr."""
    say(f"describe check passed: the mapping fits {report.object}")
    for warning in report.warnings:
        note(f"warning: {warning}")
    lines = report.privilege_lines()
    if not lines:
        say("least privilege: the integration user holds no right the mapping does not need")
    for line in lines:
        note(f"least privilege: {line}")


def check_and_report(spec: ConnectionSpec, credential: str, *, enforce_least_privilege: bool = False) -> None:
    """Check ``spec`` against Salesforce with ``credential`` and print the report (tests patch ``check_connection``)."""
    report_preflight(check_connection(spec, credential, enforce_least_privilege=enforce_least_privilege))


def _check_describe(spec: ConnectionSpec, skip: bool) -> None:
    if skip:
        note("describe check skipped (--skip-describe): the mapping was not checked against Salesforce")
        return
    credential, missing = _stored_credential(spec)
    if credential is None:
        commands = " and ".join(f"`regsync secret set {spec.name} {name}`" for name in missing)
        note(
            f"describe check skipped: {', '.join(missing)} not set yet; {commands} checks the mapping against "
            "Salesforce once every secret is set"
        )
        return
    check_and_report(spec, credential)


@connection_app.command("apply")
@handles_errors
def connection_apply(
    file: Annotated[Path, typer.Argument(help="The connection's TOML file (holds no secrets).")],
    actor: ActorOption = None,
    skip_describe: Annotated[
        bool, typer.Option("--skip-describe", help="Do not check the mapping against Salesforce's describe.")
    ] = False,
) -> None:
    """Create or update a connection from FILE (idempotent, audited)."""
    who = require_actor(actor)
    spec = load_spec(file)
    _check_describe(spec, skip_describe)
    with ledger() as session:
        result = apply_connection(session, spec, who)
    say(f"connection {spec.name} {result.action} (id {result.connection_id})")
    for key, (old, new) in result.diff.items():
        say(f"  {key}: {old!r} -> {new!r}" if result.action == "updated" else f"  {key} = {new!r}")
    if result.schedule in ("created", "updated"):
        say(f"schedule {result.schedule} from the file's [schedule]; see `regsync schedule show {spec.name}`")


def _connection_rows(session: Session) -> list[dict[str, Any]]:
    counts = dict(
        session.execute(select(Secret.connection_id, func.count()).group_by(Secret.connection_id))
        .tuples()
        .all()
    )
    rows = []
    for connection in session.scalars(select(Connection).order_by(Connection.name)):
        spec = connection.spec
        rows.append(
            {
                "name": connection.name,
                "id": connection.id,
                "enabled": connection.enabled,
                "object": spec.get("salesforce", {}).get("object"),
                "provider": spec.get("registry", {}).get("provider"),
                "secrets_set": counts.get(connection.id, 0),
                "updated_at": connection.updated_at.isoformat(),
            }
        )
    return rows


@connection_app.command("list")
@handles_errors
def connection_list(as_json: JsonOption = False) -> None:
    """List the connections."""
    with ledger() as session:
        rows = _connection_rows(session)
    if as_json:
        print_json(rows)
        return
    if not rows:
        say("no connections yet; apply one with `regsync connection apply FILE`")
    for row in rows:
        state = "enabled" if row["enabled"] else "disabled"
        say(
            f"{row['name']}  {state}  {row['object']} <- {row['provider']}  secrets set: {row['secrets_set']}"
        )


def _secret_states(spec: ConnectionSpec, masks: dict[str, str]) -> dict[str, str | None]:
    needed = {name: masks.get(name) for name in spec.secret_names()}
    return needed | {name: value for name, value in masks.items() if name not in needed}


@connection_app.command("show")
@handles_errors
def connection_show(
    name: Annotated[str, typer.Argument(help="The connection's name.")], as_json: JsonOption = False
) -> None:
    """Show a connection's spec and which secrets are set (masked)."""
    with ledger() as session:
        connection, spec = load_connection(session, name)
        states = _secret_states(spec, secrets.secret_masks(session, connection.id))
    if as_json:
        data = {"name": connection.name, "id": connection.id, "enabled": connection.enabled}
        data |= {"spec_hash": connection.spec_hash, "updated_at": connection.updated_at.isoformat()}
        print_json(data | {"spec": connection.spec, "secrets": states})
        return
    state = "enabled" if connection.enabled else "disabled"
    say(f"connection {connection.name} (id {connection.id}, {state})")
    for key, value in flatten(connection.spec).items():
        say(f"  {key} = {value!r}")
    say("secrets:")
    for secret_name, masked in states.items():
        say(f"  {secret_name}: {masked or 'not set'}")


# --- secret ----------------------------------------------------------------------------------------------


def _pipe_hint(connection: str, name: str) -> str:
    return f'printf %s "$VALUE" | regsync secret set {connection} {name}'


def _read_stdin(name: str) -> str:
    if sys.stdin is None:
        return ""
    if sys.stdin.isatty():
        return getpass.getpass(f"{name} (input hidden): ")
    value = sys.stdin.read()
    if value.endswith("\r\n"):
        return value[:-2]
    return value.removesuffix("\n")


@secret_app.command("set", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@handles_errors
def secret_set(
    ctx: typer.Context,
    connection: Annotated[str, typer.Argument(help="The connection's name.")],
    name: Annotated[secrets.SecretName, typer.Argument(help="Which secret.")],
    actor: ActorOption = None,
) -> None:
    """Set a secret of CONNECTION, reading its value from standard input (never from the command line).

    Example: printf %s "$TOKEN" | regsync secret set acme registry_token
    """
    if ctx.args:
        # Never echo what was typed: it may be the secret itself.
        fail(
            "secret values are read from standard input only, never from arguments (those end up in shell "
            f"history and process lists); pipe it in: {_pipe_hint(connection, name)}",
            EXIT_USAGE,
        )
    who = require_actor(actor)
    value = _read_stdin(name.value)
    if not value.strip():
        fail(f"no value on standard input; pipe it in: {_pipe_hint(connection, name)}", EXIT_USAGE)
    with ledger() as session:
        masked = secrets.set_secret(session, connection, name.value, value, who)
    say(f"secret {name.value} set for {connection}: {masked}")
    _check_once_complete(connection, name.value)


def _check_once_complete(connection: str, name: str) -> None:
    """After a secret the connection needs is set: check the stored mapping if no other one is missing."""
    with ledger() as session:
        _row, spec = load_connection(session, connection)
    if name not in required_secrets(spec):
        return
    credential, missing = _stored_credential(spec)
    if credential is None:
        note(f"the mapping is checked against Salesforce once {', '.join(missing)} is set too")
        return
    check_and_report(spec, credential)


@secret_app.command("keygen")
@handles_errors
def secret_keygen() -> None:
    """Print a new key for REGSYNC_SECRET_KEY (to rotate: put it first, keep the old one after it)."""
    say(secrets.generate_key())


@secret_app.command("rotate")
@handles_errors
def secret_rotate(actor: ActorOption = None) -> None:
    """Re-encrypt every stored secret, dry-run sample and review value with the first key of REGSYNC_SECRET_KEY."""
    who = require_actor(actor)
    with ledger() as session:
        count = secrets.rotate(session, who)
    say(
        f"re-encrypted {count} secret(s), and the stored dry-run samples and review values, with the primary key; "
        "older keys may now leave REGSYNC_SECRET_KEY"
    )


# --- audit -----------------------------------------------------------------------------------------------


def _event_row(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "before": event.before,
        "after": event.after,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def _summary(row: dict[str, Any]) -> str:
    after = row["after"] or {}
    if row["action"] == "connection.create":
        return f"{len(after)} field(s)"
    before = row["before"] or {}
    keys = sorted(set(before) | set(after))
    return ", ".join(f"{key}: {before.get(key)!r} -> {after.get(key)!r}" for key in keys)


@audit_app.command("list")
@handles_errors
def audit_list(
    as_json: JsonOption = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many of the newest events to show.")] = 50,
) -> None:
    """List the newest audit events, oldest first."""
    with ledger() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)).all()
        rows = [_event_row(event) for event in reversed(events)]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        say(f"#{row['id']}  {row['at']}  {row['actor']}  {row['action']}  {row['target']}  {_summary(row)}")


@audit_app.command("verify")
@handles_errors
def audit_verify(
    anchor: Annotated[
        Path | None,
        typer.Option(
            "--anchor", help="Anchor records or a SIEM export (JSON lines): detects deleted newest events."
        ),
    ] = None,
) -> None:
    """Check the audit log's hash chain; exit 1 naming the first event that was edited, deleted or moved."""
    with ledger() as session:
        result = verify_chain(session)
        problem = (
            check_heads(session, read_heads(read_utf8(anchor, "anchor file").splitlines()))
            if anchor
            else None
        )
        erasures = session.scalar(select(func.count()).where(AuditEvent.action == ERASE_ACTION)) or 0
    if not result.ok:
        fail(f"audit log broken at event {result.broken_id}: {result.reason}")
    if problem is not None:
        fail(f"audit log does not match the anchor: {problem}")
    say(f"audit log intact: {result.checked} event(s), newest hash {result.head_hash or '-'}")
    say(f"erasure events: {erasures}{'; the anchored head is present' if anchor else ''}")
