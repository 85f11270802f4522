"""`regsync apikey …`: create (shown once), list and revoke API keys of the HTTP API; every change audited."""

from __future__ import annotations

from typing import Annotated

import typer

from worker.api.keys import create_key, list_keys, revoke_key
from worker.cli.admin import ActorOption, JsonOption, ledger, note, say
from worker.cli.common import handles_errors, print_json, require_actor
from worker.roles import Role

apikey_app = typer.Typer(no_args_is_help=True, help="Create, list and revoke API keys of the HTTP API.")


@apikey_app.command("create")
@handles_errors
def apikey_create(
    connection: Annotated[
        list[str], typer.Option("--connection", "-c", help="A connection the key may see (repeat for more).")
    ],
    role: Annotated[
        Role, typer.Option("--role", help="viewer reads; operator also acts; admin also configures.")
    ],
    label: Annotated[
        str | None, typer.Option("--label", help="What the key is for (shown in `apikey list`).")
    ] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API key scoped to the given connections. The key is printed once and never stored."""
    who = require_actor(actor)
    with ledger() as session:
        created = create_key(session, connections=connection, role=role, actor=who, label=label)
    if as_json:
        print_json(
            {"id": created.id, "prefix": created.prefix, "key": created.secret}
            | {"role": created.role.value, "connections": created.connections}
        )
        return
    say(created.secret)
    note(
        f"API key {created.id} ({created.role.value} on {', '.join(created.connections)}) created; "
        "it is shown only this once: store it now. Send it as `Authorization: Bearer KEY`."
    )


@apikey_app.command("list")
@handles_errors
def apikey_list(
    include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List API keys (prefix, role, connections, last use); never the keys themselves."""
    with ledger() as session:
        rows = list_keys(session, include_revoked=include_revoked)
    if as_json:
        print_json(rows)
        return
    if not rows:
        say("no API keys; create one with `regsync apikey create --connection NAME --role viewer`")
    for row in rows:
        state = f"revoked {row['revoked_at'][:19]}" if row["revoked_at"] else "active"
        used = row["last_used_at"][:19] if row["last_used_at"] else "never"
        say(
            f"{row['id']}  {row['prefix']}…  {row['role']}  {','.join(row['connections'])}  {state}  "
            f"last used {used}  {row['label'] or ''}".rstrip()
        )


@apikey_app.command("revoke")
@handles_errors
def apikey_revoke(
    key_id: Annotated[int, typer.Argument(metavar="ID", help="The key's id (see `regsync apikey list`).")],
    actor: ActorOption = None,
) -> None:
    """Revoke an API key: its next request answers 401."""
    who = require_actor(actor)
    with ledger() as session:
        revoke_key(session, key_id, who)
    say(f"API key {key_id} revoked")
