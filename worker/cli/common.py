"""What every CLI command shares: error handling and exit codes, the console, the actor."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import ArgumentError, DBAPIError

from config.logging import redact
from config.settings import get_settings
from worker.errors import AlertNotFound, ChangeNotFound, ConfigurationError, RegsyncError, RunNotFound
from worker.ledger.db import ledger_error
from worker.text_input import escape_control, refuse_control

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

console = Console()
err_console = Console(stderr=True)

#: Errors that are the caller's to fix, so exit 2: configuration, and an id that matches nothing (a typo is
#: not a failed run).
USAGE_ERRORS: tuple[type[RegsyncError], ...] = (
    ConfigurationError,
    RunNotFound,
    AlertNotFound,
    ChangeNotFound,
)

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    # Redacted (no credential reaches a terminal or CI log) and escaped (brackets are rich markup).
    # Control characters are escaped too: a hostile name must not forge a second line or colour the terminal.
    shown = escape(escape_control(redact(message)))
    err_console.print(f"[bold red]error:[/] {shown}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handles_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn regsync errors into a one-line message and an exit code (2 for configuration and unknown ids,
    1 otherwise)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except USAGE_ERRORS as exc:
            fail(exc.message, EXIT_USAGE)
        except RegsyncError as exc:
            fail(exc.message, EXIT_FAILED)
        except DBAPIError as exc:
            fail(ledger_error(exc).message, EXIT_FAILED)
        except ArgumentError as exc:  # also NoSuchModuleError: an unknown scheme or driver
            fail(f"REGSYNC_DATABASE_URL is not a database URL regsync can use ({exc})", EXIT_USAGE)

    return wrapper


ACTOR_HELP = "Who performs this admin action, for the audit trail. [env var: REGSYNC_ACTOR]"


def require_actor(actor: str | None) -> str:
    """The acting admin: --actor, else REGSYNC_ACTOR; admin commands refuse to run without one."""
    value = actor or get_settings().actor
    if not value or not value.strip():
        raise ConfigurationError("admin commands need an actor: pass --actor NAME or set REGSYNC_ACTOR")
    return refuse_control(value.strip(), "actor (--actor / REGSYNC_ACTOR)")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
