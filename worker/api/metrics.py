"""GET /metrics: Prometheus text; process samples (multiprocess-aware) plus ledger numbers read at scrape time.

Ledger numbers: runs by status and kind, the last known Salesforce API usage and limit per connection, and
open alerts by kind. The endpoint is for the operator's Prometheus, not for tenants (it names every
connection): it is closed (401) unless REGSYNC_METRICS_TOKEN is set and sent as a bearer token, or
REGSYNC_METRICS_PUBLIC=true is set on purpose.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from config.settings import get_settings
from worker.api.alerts_port import open_alerts_by_kind
from worker.api.problems import ApiError
from worker.errors import LedgerError
from worker.ledger.db import session_scope
from worker.ledger.models import Connection, Run

log = logging.getLogger(__name__)
router = APIRouter()


class LedgerCollector:
    """Collects ledger-wide gauges when Prometheus scrapes (cheap aggregate queries, no history kept)."""

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._collect()
        except (LedgerError, SQLAlchemyError) as exc:
            log.warning("metrics: ledger unreachable: %s", type(exc).__name__)
            up = GaugeMetricFamily("regsync_ledger_up", "1 if the ledger answered this scrape.")
            up.add_metric([], 0)
            yield up

    def _collect(self) -> Iterator[Metric]:
        runs = GaugeMetricFamily(
            "regsync_runs", "Runs in the ledger by status and kind.", labels=["status", "kind"]
        )
        used = GaugeMetricFamily(
            "regsync_salesforce_api_used",
            "Salesforce daily API requests used, as last reported to a run, by connection.",
            labels=["connection"],
        )
        limit = GaugeMetricFamily(
            "regsync_salesforce_api_limit",
            "Salesforce daily API request limit, by connection.",
            labels=["connection"],
        )
        with session_scope() as session:
            for status, kind, count in session.execute(
                select(Run.status, Run.kind, func.count()).group_by(Run.status, Run.kind)
            ):
                runs.add_metric([status, kind], count)
            for name, used_now, limit_now in _latest_api_usage(session):
                used.add_metric([name], used_now)
                if limit_now is not None:
                    limit.add_metric([name], limit_now)
            alerts = _open_alerts(session)
        up = GaugeMetricFamily("regsync_ledger_up", "1 if the ledger answered this scrape.")
        up.add_metric([], 1)
        yield from (up, runs, used, limit, alerts)


def _latest_api_usage(session: Session) -> list[tuple[str, int, int | None]]:
    newest = (
        select(Run.connection_id, func.max(Run.id).label("run_id"))
        .where(Run.api_used_after.is_not(None))
        .group_by(Run.connection_id)
        .subquery()
    )
    query = (
        select(Connection.name, Run.api_used_after, Run.api_limit)
        .join(newest, newest.c.run_id == Run.id)
        .join(Connection, Connection.id == Run.connection_id)
    )
    return [(name, int(u or 0), lim) for name, u, lim in session.execute(query)]


def _open_alerts(session: Session) -> GaugeMetricFamily:
    family = GaugeMetricFamily("regsync_alerts_open", "Open (unresolved) alerts by kind.", labels=["kind"])
    for kind, count in sorted(open_alerts_by_kind(session).items()):
        family.add_metric([kind], count)
    return family


def scrape() -> bytes:
    """This process's samples, or every process's in multiprocess mode, then the ledger gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        MultiProcessCollector(processes)  # type: ignore[no-untyped-call]
    else:
        processes = REGISTRY
    ledger = CollectorRegistry()
    ledger.register(LedgerCollector())
    return generate_latest(processes) + generate_latest(ledger)


def _check_token(request: Request) -> None:
    """401 unless the metrics token is given, or no token is set and REGSYNC_METRICS_PUBLIC=true."""
    settings = get_settings()
    token = settings.metrics_token
    if token is None and settings.metrics_public:
        return
    given = request.headers.get("authorization", "")
    expected = f"Bearer {token.get_secret_value()}" if token is not None else None
    if expected is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(
            401,
            "metrics need `Authorization: Bearer <REGSYNC_METRICS_TOKEN>` "
            "(or REGSYNC_METRICS_PUBLIC=true, set on purpose, with no token)",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    _check_token(request)
    return Response(scrape(), media_type=CONTENT_TYPE_LATEST)
