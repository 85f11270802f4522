"""`regsync schedule set/show` and `regsync enable/disable`: when a connection runs by itself, and whether.

Mass update is off until an admin enables the connection; every change here is audited with the actor.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Annotated, Any

import typer
from croniter import croniter

from worker.cli.admin import ActorOption, JsonOption, check_and_report, ledger, note, say
from worker.cli.common import handles_errors, print_json, require_actor
from worker.connections.preflight import check_stored
from worker.ledger.models import RunMode
from worker.scheduling.models import DEFAULT_GRACE_S, DEFAULT_STARTING_DEADLINE_S, Concurrency
from worker.scheduling.spec import TimingSpec, make_schedule_spec
from worker.scheduling.store import find_connection, schedule_view, set_enabled, set_schedule

schedule_app = typer.Typer(no_args_is_help=True, help="Set and show when a connection runs by itself.")

#: Seconds between two slots below which `schedule set` warns (it still sets the schedule).
FREQUENT = 5 * 60


def shortest_gap(cron: str, steps: int = 200) -> int:
    """The shortest time between two consecutive slots of ``cron``, in seconds, over its next ``steps`` slots
    (on the wall clock: enough to tell "every minute for an hour" from "daily")."""
    walker = croniter(cron, dt.datetime.now(dt.UTC).replace(tzinfo=None))
    slots = [walker.get_next(dt.datetime) for _ in range(steps)]
    return int(min((b - a).total_seconds() for a, b in itertools.pairwise(slots)))


ConnectionArg = Annotated[str, typer.Argument(help="The connection's name.")]


@schedule_app.command("set")
@handles_errors
def schedule_set(
    connection: ConnectionArg,
    cron: Annotated[str, typer.Argument(help='Five-field cron expression, e.g. "0 2 * * *" (02:00 daily).')],
    *,
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone the cron reads, e.g. Europe/Oslo.")],
    concurrency: Annotated[
        Concurrency,
        typer.Option("--concurrency", help="A slot while a run is active: skip, replace or run too."),
    ] = Concurrency.FORBID,
    starting_deadline: Annotated[
        int, typer.Option("--starting-deadline", min=0, help="Seconds a missed slot may still start late.")
    ] = DEFAULT_STARTING_DEADLINE_S,
    grace: Annotated[
        int, typer.Option("--grace", min=0, help="Seconds after a slot before alerting calls it missed.")
    ] = DEFAULT_GRACE_S,
    changes: Annotated[
        bool,
        typer.Option(
            "--changes",
            help="Set the schedule of changes runs (only what changed since the last one), not of full runs.",
        ),
    ] = False,
    actor: ActorOption = None,
) -> None:
    """Set CONNECTION's schedule of full runs, or with --changes of changes runs (audited).

    It runs only once the connection is enabled. A typical pair: a weekly full reconcile and hourly changes runs.
    """
    who = require_actor(actor)
    spec: TimingSpec = make_schedule_spec(cron, tz, concurrency.value, starting_deadline, grace)
    mode = RunMode.CHANGES if changes else RunMode.FULL
    with ledger() as session:
        row = find_connection(session, connection, lock=True)
        action = set_schedule(session, row, spec, who, mode=mode)
        enabled = row.enabled
    say(
        f"{mode.value} schedule of {connection} {action}: {spec.cron!r} in {spec.timezone}, "
        f"concurrency {spec.concurrency}"
    )
    gap = shortest_gap(spec.cron)
    if gap < FREQUENT:
        note(
            f"warning: {spec.cron!r} fires as often as every {gap // 60} min, more often than every 5 min; "
            "each run spends Salesforce and registry API calls (the schedule is set)"
        )
    if not enabled:
        note(f"{connection} is disabled: nothing runs by itself until `regsync enable {connection}`")


@schedule_app.command("show")
@handles_errors
def schedule_show(connection: ConnectionArg, as_json: JsonOption = False) -> None:
    """Show CONNECTION's schedule, whether it is enabled, and its next slots in local time."""
    with ledger() as session:
        view = schedule_view(session, connection)
    if as_json:
        print_json(view)
        return
    _print_view(view)


def _print_view(view: dict[str, Any]) -> None:
    state = "enabled" if view["enabled"] else "disabled (nothing runs by itself)"
    say(f"connection {view['connection']}: {state}")
    schedule = view["schedule"]
    if schedule is None:
        say(
            f'no schedule; set one with `regsync schedule set {view["connection"]} "0 2 * * *" --tz Europe/Oslo`'
        )
    else:
        _print_schedule("full runs", schedule)
    if view.get("changes_schedule") is not None:
        _print_schedule("changes runs", view["changes_schedule"])


def _print_schedule(title: str, schedule: dict[str, Any]) -> None:
    say(f"  {title}:")
    say(f"  cron {schedule['cron']!r} in {schedule['timezone']}, concurrency {schedule['concurrency']}")
    say(f"  starting deadline {schedule['starting_deadline_s']} s, grace {schedule['grace_s']} s")
    say(f"  last slot handled {schedule['last_slot'] or '-'}, next slot {schedule['next_slot'] or '-'} (UTC)")
    say("  upcoming: " + ", ".join(schedule["upcoming_local"]))


def _preflight(connection: str) -> None:
    """Before enabling: every secret set, the mapping fits, and least privilege holds if the file requires it."""
    with ledger() as session:
        spec, credential = check_stored(session, connection)
    check_and_report(spec, credential, enforce_least_privilege=spec.salesforce.require_least_privilege)


def _toggle(connection: str, enabled: bool, actor: str | None, *, without_notices: bool = False) -> None:
    who = require_actor(actor)
    if enabled:
        _preflight(connection)
    with ledger() as session:
        changed = set_enabled(session, connection, enabled, who, without_notices=without_notices)
        view = schedule_view(session, connection)
    word = "enabled" if enabled else "disabled"
    say(f"{connection} {word}" if changed else f"{connection} was already {word}; nothing changed")
    if enabled and view["schedule"] is None:
        note(
            f"{connection} has no schedule yet: set one with `regsync schedule set {connection} CRON --tz ZONE`"
        )


WithoutNoticesOption = Annotated[
    bool,
    typer.Option(
        "--without-notices",
        help="Enable although the connection has no alert channel: nobody is told when its runs fail. "
        "Audited.",
    ),
]


@handles_errors
def enable_command(
    connection: ConnectionArg, actor: ActorOption = None, without_notices: WithoutNoticesOption = False
) -> None:
    """Let CONNECTION's schedule start mass updates by itself (audited).

    Refused while the connection has no alert channel, unless --without-notices is given.
    """
    _toggle(connection, True, actor, without_notices=without_notices)


@handles_errors
def disable_command(connection: ConnectionArg, actor: ActorOption = None) -> None:
    """Stop CONNECTION's scheduled mass updates (audited); a run already started goes on.

    Stop such a run with `regsync runs cancel RUN`.
    """
    _toggle(connection, False, actor)


def register(app: typer.Typer) -> None:
    """Add `schedule`, `enable` and `disable` to the root command."""
    app.add_typer(schedule_app, name="schedule")
    app.command("enable")(enable_command)
    app.command("disable")(disable_command)
