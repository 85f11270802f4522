"""The ``regsync`` command: the root app, logging set-up, and the sub-command groups."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from pydantic import ValidationError

from config.logging import configure_logging
from config.settings import get_settings
from worker.cli.admin import audit_app, connection_app, secret_app
from worker.cli.alerts import alerts_app, report_app
from worker.cli.apikey import apikey_app
from worker.cli.backfill import BACKFILL_CONTEXT, backfill_command
from worker.cli.cancel import cancel_command
from worker.cli.changes import changes_app
from worker.cli.common import EXIT_USAGE, fail
from worker.cli.demo import demo_command
from worker.cli.feed import register as register_feed
from worker.cli.health import health_command
from worker.cli.help import install as readable_help
from worker.cli.matches import matches_app
from worker.cli.purge import register as register_purge
from worker.cli.resume import resume_command
from worker.cli.runs import run_command, runs_app
from worker.cli.schedule import register as register_schedule
from worker.cli.standby import standby_command
from worker.ledger.origin import cli_origin, origin_scope

readable_help()
# Never print local variables in tracebacks: they may hold a secret being set.
app = typer.Typer(no_args_is_help=True, pretty_exceptions_show_locals=False)
app.add_typer(connection_app, name="connection")
app.add_typer(secret_app, name="secret")
app.add_typer(audit_app, name="audit")
app.add_typer(runs_app, name="runs")
runs_app.command("resume")(resume_command)
runs_app.command("cancel")(cancel_command)
app.add_typer(apikey_app, name="apikey")
app.add_typer(alerts_app, name="alerts")
app.add_typer(report_app, name="report")
app.add_typer(changes_app, name="changes")
app.add_typer(matches_app, name="matches")
app.command("run")(run_command)
app.command("demo")(demo_command)
app.command("standby")(standby_command)
app.command("health")(health_command)
app.command("backfill", context_settings=BACKFILL_CONTEXT)(backfill_command)
register_schedule(app)  # schedule set/show, enable, disable
register_feed(app)  # feed show
register_purge(app)  # purge, forget


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


@app.callback()
def main(
    ctx: typer.Context,
    log_level: Annotated[
        LogLevel | None, typer.Option("--log-level", envvar="REGSYNC_LOG_LEVEL", case_sensitive=False)
    ] = None,
    log_format: Annotated[LogFormat | None, typer.Option("--log-format", envvar="REGSYNC_LOG_FORMAT")] = None,
) -> None:
    """regsync: keeps CRM records in sync with business-registry data."""
    try:
        settings = get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"REGSYNC_{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        fail(f"invalid settings: {problems}", EXIT_USAGE)
    configure_logging(
        fmt=log_format.value if log_format else settings.log_format,
        level=log_level.value if log_level else settings.log_level,
    )
    ctx.with_resource(origin_scope(cli_origin()))  # audit events of this command carry its OS user and host


if __name__ == "__main__":
    app(prog_name="regsync")
