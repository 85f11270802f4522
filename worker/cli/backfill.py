"""`regsync backfill`: filters, dry run (per-field preview), estimate.

Dry-run samples show CRM and registry values: they are printed here, to the admin who asked for them, and
never logged (see worker.ledger.backfill_models).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from config.settings import get_settings
from worker.backfill.estimate import Estimate, estimate
from worker.backfill.options import (
    BackfillOptions,
    check_fields,
    check_only_failed,
    check_where,
    country_condition,
    resolve_selection,
    start_backfill,
)
from worker.cli.common import ACTOR_HELP, console, handles_errors, print_json, require_actor
from worker.cli.runs import exit_code_for, print_summary, watch
from worker.connections.apply import load_connection
from worker.connections.preflight import require_secrets
from worker.connections.spec import ConnectionSpec
from worker.crm.ids import read_ids_file
from worker.errors import InvalidFilter
from worker.infra.dispatch import CeleryDispatcher
from worker.ledger.db import session_scope
from worker.ledger.field_changes import field_changes
from worker.ledger.views import show_run
from worker.matching.count import name_searches
from worker.registry.brreg import MAX_BATCH as BRREG_BATCH
from worker.sync.runtime import load_runtime
from worker.text_input import check_db_id, refuse_control

if TYPE_CHECKING:
    from worker.crm.salesforce import SalesforceClient

WhereArgs = list[tuple[str, str, str]]
#: `--where FIELD OP VALUE` triples arrive as extra arguments: Typer has no list-of-3-values option.
BACKFILL_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


#: The longest the --where arguments may be together: the query travels in a GET URL, which Salesforce caps
#: at about 16,000 characters once URL-encoded (an encoded character can take three).
MAX_WHERE_CHARS = 4_000


def parse_where_args(args: list[str]) -> WhereArgs:
    """``--where FIELD OP VALUE`` triples from the arguments Typer left over (it has no 3-value list option).

    Raises:
        InvalidFilter: Anything else is left over, or a ``--where`` has fewer than three values.
    """
    found: WhereArgs = []
    rest = list(args)
    length = sum(len(arg) for arg in rest)
    if length > MAX_WHERE_CHARS:
        raise InvalidFilter(
            f"the --where filters are {length:,} characters long; the limit is {MAX_WHERE_CHARS:,} "
            "(Salesforce refuses longer queries): use fewer conditions or an --ids-file"
        )
    while rest:
        head = rest.pop(0)
        if head != "--where":
            raise InvalidFilter(f"unexpected argument {head!r}; a filter is --where FIELD OP VALUE")
        if len(rest) < 3:
            raise InvalidFilter(
                "--where needs three values: FIELD OP VALUE (quote OP and VALUE in the shell)"
            )
        # Refused, not escaped: the filter is audited, and a control character in it is never a real value.
        field, op, value = (refuse_control(arg, "--where") for arg in rest[:3])
        found.append((field, op, value))
        del rest[:3]
    return found


@contextmanager
def _crm(connection_id: int) -> Iterator[SalesforceClient]:
    from worker.crm.salesforce import SalesforceClient  # simple-salesforce: only for commands that call it

    runtime = load_runtime(connection_id)
    with SalesforceClient(runtime.spec, runtime.crm_secret, timeout_s=get_settings().crm_timeout_s) as crm:
        yield crm


def _options(
    spec: ConnectionSpec,
    connection_id: int,
    crm: SalesforceClient,
    *,
    where: WhereArgs,
    country: str | None,
    ids: tuple[str, ...] | None,
    only_failed: int | None,
    fields: str | None,
    dry_run: bool,
) -> BackfillOptions:
    """Every option checked now (describe for --where), so that the run cannot fail on them later."""
    if country:
        country_condition(spec, country)
    if only_failed is not None:
        with session_scope() as session:
            check_only_failed(session, only_failed, connection_id)
    return BackfillOptions(
        dry_run=dry_run,
        fields=check_fields(spec, fields.split(",")) if fields is not None else None,
        where=check_where(where, crm.describe),
        country=country.strip().upper() if country else None,
        ids=ids,
        only_failed_run=only_failed,
    )


@handles_errors
def backfill_command(
    ctx: typer.Context,
    connection: str = typer.Argument(..., help="Connection name."),
    *,
    country: str | None = typer.Option(
        None, "--country", help="Only records of this country (NO, SE, DK, FI)."
    ),
    ids_file: Path | None = typer.Option(
        None, "--ids-file", help="Only these records: one Salesforce Id a line."
    ),
    only_failed: int | None = typer.Option(
        None, "--only-failed", metavar="RUN", help="Only RUN's failed records."
    ),
    fields: str | None = typer.Option(None, "--fields", help="Only these mapped fields, e.g. name,status."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Fetch and compare, write nothing; per-field preview."
    ),
    estimate_only: bool = typer.Option(
        False, "--estimate", help="Print the calls it would make; start nothing."
    ),
    wait: bool = typer.Option(False, "--wait", help="Wait for the run and print its summary."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    actor: str | None = typer.Option(None, "--actor", help=ACTOR_HELP),
) -> None:
    """Re-sync the records of CONNECTION that the filters select (all when there is none).

    Filters (all must hold): --where FIELD OP VALUE, repeatable, on fields of the object, OP one of
    = != < <= > >= LIKE (quote it in the shell; LIKE takes % and _ wildcards; the value null with = or !=
    means an empty field); --country; --ids-file; --only-failed RUN. --estimate counts the records first
    (one Salesforce call for a SELECT COUNT(), none for an ids file alone).
    """
    where = parse_where_args(ctx.args)
    who = None if estimate_only else require_actor(actor)
    if only_failed is not None:
        check_db_id(only_failed, "--only-failed run")
    # Read before the ledger and Salesforce are asked anything: a bad file costs nothing but its message.
    ids = tuple(read_ids_file(ids_file)) if ids_file is not None else None
    with session_scope() as session:
        row, spec = load_connection(session, connection)
        connection_id = row.id
        require_secrets(session, connection)  # before any Salesforce call: name every missing secret
    with _crm(connection_id) as crm:
        options = _options(
            spec,
            connection_id,
            crm,
            where=where,
            country=country,
            ids=ids,
            only_failed=only_failed,
            fields=fields,
            dry_run=dry_run,
        )
        if estimate_only:
            selection = resolve_selection(options, connection_id, spec)
            result = estimate(
                crm,
                selection,
                chunk_size=spec.sync.chunk_size,
                dry_run=dry_run,
                registry_batch=BRREG_BATCH if spec.registry.provider == "brreg" else 1,
                name_searches=(
                    partial(name_searches, spec, connection_id, crm, selection)
                    if spec.matching.enabled
                    else None
                ),
            )
            _print_estimate(connection, options, result, as_json)
            return
    assert who is not None
    run_id = start_backfill(connection, options, actor=who, dispatch=CeleryDispatcher())
    _report(run_id, connection, dry_run=dry_run, wait=wait, as_json=as_json)


def _report(run_id: int, connection: str, *, dry_run: bool, wait: bool, as_json: bool) -> None:
    if not wait:
        with session_scope() as session:
            view = show_run(session, run_id)
        print_json(view) if as_json else console.print(
            f"backfill run {run_id} queued for {connection}{' (dry run)' if dry_run else ''}"
        )
        return
    view = watch(run_id, quiet=as_json)
    if dry_run:  # the admin who asked for the preview sees samples of old → new values
        with session_scope() as session:
            view["field_changes"] = field_changes(session, run_id, samples=True)
    print_json(view) if as_json else print_summary(view)
    raise typer.Exit(exit_code_for(view["status"]))


def _print_estimate(connection: str, options: BackfillOptions, result: Estimate, as_json: bool) -> None:
    if as_json:
        print_json({"connection": connection, "options": options.summary(), "estimate": result.as_dict()})
        return
    bound = "at most " if result.records_is_upper_bound else ""
    writes = (
        "none: dry run" if options.dry_run else f"at most {result.write_calls_max}, only for changed records"
    )
    lines = [
        f"estimate for a backfill of {connection}{' (dry run)' if options.dry_run else ''}:",
        f"  records selected: {bound}{result.records} (counting them cost {result.count_calls} Salesforce call(s))",
        f"  Salesforce API calls: at most {result.crm_calls_max} = {result.query_calls} query + "
        f"{result.read_calls} re-read + writes ({writes}) + {result.check_calls} run-start check"
        + (
            f" + at most {result.describe_calls_max} describe(s) before writes"
            if result.describe_calls_max
            else ""
        ),
        f"  registry calls: at most {result.registry_calls_max} (one per unique valid org number, or batch"
        f"{'; name searches included' if result.name_searches and not options.dry_run else ''})",
        *_name_search_line(result, options.dry_run),
        "nothing was started; run the same command without --estimate to start it",
    ]
    console.print("\n".join(lines), highlight=False)


def _name_search_line(result: Estimate, dry_run: bool) -> list[str]:
    if not result.name_searches:
        return []
    how = "counted, not searched: dry run" if dry_run else "each a registry call"
    return [f"  name searches: {result.name_searches} record(s) without a valid org number ({how})"]
