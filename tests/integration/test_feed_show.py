"""`regsync feed show` on a real ledger (SQLite and PostgreSQL): watermarks, lag and the last page read.

The watermark rows are written here the way a changes run writes them (the planner's page commit for a feed:
position + details with items/first/last/newest_at/read_at/run_id; the key index for ``crm:<object>``), so the
output can be checked without a run. test_changes_surfaces_sandbox.py shows it after a real changes run.
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from typer.testing import CliRunner

from tests.conftest import RegsyncEnv
from tests.connection_files import BRREG, acme_toml
from worker.changes.models import Watermark
from worker.cli.feed import position_time
from worker.cli.main import app
from worker.connections.apply import apply_connection
from worker.connections.spec import parse_spec
from worker.ledger.db import session_scope

UTC = dt.UTC
NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def frozen() -> Iterator[Any]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def apply(text: str) -> int:
    with session_scope() as session:
        return apply_connection(session, parse_spec(tomllib.loads(text)), "alice").connection_id


def store(connection_id: int, source: str, position: str, details: dict[str, Any]) -> None:
    with session_scope() as session:
        session.add(
            Watermark(
                connection_id=connection_id,
                source=source,
                position=position,
                details=details,
                updated_at=NOW - dt.timedelta(minutes=5),
            )
        )


def feed_show(*args: str) -> Any:
    result = CliRunner().invoke(app, ["feed", "show", *args], env={"COLUMNS": "250"})
    return result


def test_feed_show_before_any_changes_run_names_both_sources_unread(env: RegsyncEnv, frozen: Any) -> None:
    apply(acme_toml())

    text = feed_show("acme")
    data = json.loads(feed_show("acme", "--json").output)

    assert text.exit_code == 0, text.output
    assert "feed:proff:NO: not read yet" in text.output and "crm:Account: not read yet" in text.output
    assert [(s["source"], s["position"]) for s in data["sources"]] == [
        ("feed:proff:NO", None),
        ("crm:Account", None),
    ]


def test_feed_show_lag_from_the_newest_item_then_the_position_then_the_read(
    env: RegsyncEnv, frozen: Any
) -> None:
    connection_id = apply(acme_toml())
    newest = NOW - dt.timedelta(hours=3, minutes=30)
    store(
        connection_id,
        "feed:proff:NO",
        "2026-12-06",
        {
            "items": 812,
            "first": "p-101",
            "last": "p-912",
            "newest_at": newest.isoformat(),
            "read_at": (NOW - dt.timedelta(minutes=5)).isoformat(),
            "run_id": 7,
        },
    )
    store(
        connection_id,
        "crm:Account",
        (NOW - dt.timedelta(minutes=50)).isoformat(),
        {"rows": 3, "first": "001A", "last": "001C"},
    )

    data = json.loads(feed_show("acme", "--json").output)
    text = feed_show("acme").output

    feed, crm = data["sources"]
    assert (feed["source"], feed["position"], feed["lag_s"], feed["lag_from"]) == (
        "feed:proff:NO",
        "2026-12-06",
        3.5 * 3600,
        "newest item",
    )
    assert feed["last_page"] == {
        "items": 812,
        "first": "p-101",
        "last": "p-912",
        "newest_at": newest.isoformat(),
        "read_at": (NOW - dt.timedelta(minutes=5)).isoformat(),
        "run_id": 7,
    }
    assert (crm["source"], crm["lag_s"], crm["lag_from"]) == ("crm:Account", 3000.0, "position")
    assert "feed:proff:NO: position 2026-12-06, lag 3 h 30 min (newest item)" in text
    assert "last page: items 812, first p-101, last p-912" in text and "run_id 7" in text
    assert "crm:Account: position" in text and "lag 50 min (position)" in text


def test_feed_show_of_a_brreg_feed_by_id_and_an_empty_last_page(env: RegsyncEnv, frozen: Any) -> None:
    connection_id = apply(acme_toml(registry=BRREG))
    read_at = NOW - dt.timedelta(minutes=20)
    store(
        connection_id,
        "feed:brreg:NO",
        "20512337",
        {
            "items": 0,
            "first": None,
            "last": None,
            "newest_at": None,
            "read_at": read_at.isoformat(),
            "run_id": 9,
        },
    )

    feed = json.loads(feed_show("acme", "--json").output)["sources"][0]

    # An id says no time, an empty page has no newest item: the feed had nothing newer when it was read.
    assert (feed["source"], feed["position"], feed["lag_s"], feed["lag_from"]) == (
        "feed:brreg:NO",
        "20512337",
        1200.0,
        "last read",
    )


def test_feed_show_of_an_unknown_connection_fails_clearly(env: RegsyncEnv) -> None:
    result = feed_show("nobody")

    assert result.exit_code != 0 and "no connection named 'nobody'" in result.output


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        ("2026-12-01", dt.datetime(2026, 12, 1, tzinfo=UTC)),
        ("dato:2026-11-30T23:00:00.000Z", dt.datetime(2026, 11, 30, 23, tzinfo=UTC)),
        ("2026-12-05T10:00:00+00:00", dt.datetime(2026, 12, 5, 10, tzinfo=UTC)),
        ("20512337", None),
        ("garbage", None),
        (None, None),
    ],
)
def test_position_time(position: str | None, expected: dt.datetime | None) -> None:
    assert position_time(position) == expected
