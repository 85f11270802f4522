"""`regsync feed show CONNECTION`: how far a connection's changes runs have read, and how far behind they are.

Per source: the registry's change feed (``feed:<provider>:<country>``) and the CRM's SystemModstamp read
(``crm:<object>``), each with its watermark, its lag and the last page read. The lag is now minus the newest
item's time when the last page says it (``details.newest_at``), else minus the position's own date (a Proff
day, a brreg first-run ``dato:``, a CRM timestamp), else minus when the last page was read (an empty page: the
feed had nothing newer). No org numbers, no values: positions, counts and item ids only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.changes.keyindex import crm_source
from worker.changes.models import Watermark
from worker.cli.admin import JsonOption, say
from worker.cli.common import handles_errors, print_json
from worker.connections.apply import load_connection
from worker.feeds.port import feed_source
from worker.ledger.db import session_scope
from worker.ledger.models import utcnow

feed_app = typer.Typer(no_args_is_help=True, help="Show how far a connection's changes runs have read.")

_DATO = "dato:"


def position_time(position: str | None) -> dt.datetime | None:
    """The time a position stands for, when it says one: a day (Proff), ``dato:<iso>`` (a brreg first run) or
    an ISO timestamp (the CRM); None for a brreg ``oppdateringsid`` or no position."""
    if not position or position.isdigit():
        return None
    text = position.removeprefix(_DATO).replace("Z", "+00:00")
    try:
        if len(text) == len("YYYY-MM-DD"):
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.UTC)
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=dt.UTC)


def _parse(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=dt.UTC)


def lag(row: Watermark, now: dt.datetime) -> tuple[float | None, str | None]:
    """(seconds behind, what they are measured from), or (None, None) when the watermark does not say."""
    details = row.details or {}
    for basis, at in (
        ("newest item", _parse(details.get("newest_at"))),
        ("position", position_time(row.position)),
        ("last read", _parse(details.get("read_at"))),
    ):
        if at is not None:
            return max(0.0, round((now - at).total_seconds(), 1)), basis
    return None, None


def source_view(source: str, row: Watermark | None, now: dt.datetime) -> dict[str, Any]:
    """One source as `feed show --json` prints it (``position`` None: never read)."""
    if row is None:
        return {"source": source, "position": None, "lag_s": None, "lag_from": None, "updated_at": None}
    seconds, basis = lag(row, now)
    return {
        "source": source,
        "position": row.position,
        "lag_s": seconds,
        "lag_from": basis,
        "updated_at": row.updated_at.isoformat() if row.updated_at else None,
        "last_page": dict(row.details or {}),
    }


def feed_view(session: Session, connection: str, now: dt.datetime | None = None) -> dict[str, Any]:
    """The connection's feed and CRM watermarks (expected ones first, shown even before a first read)."""
    now = now or utcnow()
    row, spec = load_connection(session, connection)
    stored = {
        w.source: w for w in session.scalars(select(Watermark).where(Watermark.connection_id == row.id))
    }
    # The feed a changes run reads: the connection's fixed country, else Norway (worker.changes.plan).
    country = (spec.salesforce.country or "NO").upper()
    expected = [feed_source(spec.registry.provider, country), crm_source(spec.salesforce.object)]
    sources = expected + sorted(set(stored) - set(expected))
    return {"connection": connection, "sources": [source_view(s, stored.get(s), now) for s in sources]}


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h {minutes % 60} min" if hours < 48 else f"{hours // 24} d {hours % 24} h"


def _print(view: dict[str, Any]) -> None:
    say(f"connection {view['connection']}")
    for source in view["sources"]:
        if source["position"] is None:
            say(f"  {source['source']}: not read yet (the first changes run starts it)")
            continue
        behind = (
            "unknown" if source["lag_s"] is None else f"{_duration(source['lag_s'])} ({source['lag_from']})"
        )
        say(
            f"  {source['source']}: position {source['position']}, lag {behind}, moved {source['updated_at']}"
        )
        page = source["last_page"]
        if page:
            say("    last page: " + ", ".join(f"{key} {value}" for key, value in page.items()))


@feed_app.command("show")
@handles_errors
def show_command(
    connection: str = typer.Argument(..., help="Connection name."), as_json: JsonOption = False
) -> None:
    """Show CONNECTION's change-feed and CRM watermarks, their lag and the last page read."""
    with session_scope() as session:
        view = feed_view(session, connection)
    print_json(view) if as_json else _print(view)


def register(app: typer.Typer) -> None:
    """Add `feed` to the root command."""
    app.add_typer(feed_app, name="feed")
