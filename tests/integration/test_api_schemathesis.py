"""Acceptance 2 of the HTTP API: schemathesis against the published OpenAPI finds no 5xx, no schema violation.

In-process (ASGI) on a PostgreSQL ledger with two tenants' data, as an admin key of connection A (so every
operation is reachable). A points at a sandbox Salesforce over TLS, so backfill filters and estimates really
ask Salesforce; heartbeats are written as a live worker and beat would, so /v1/health answers 200.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import claimed_redis
from tests.integration.api_world import A, World, build_world, ledger_env
from tests.unit.fakes import FakeDispatcher
from worker.api.app import create_app
from worker.api.throttle import MemoryThrottle
from worker.infra import heartbeat
from worker.sandbox.stack import sandbox_stack

# Built at import (schemathesis reads the schema at collection); the ledger and Redis it uses are resolved per
# request from the environment, which the module fixture below sets.
APP = create_app(throttle=MemoryThrottle(1_000_000), dispatcher=FakeDispatcher())
schema = schemathesis.openapi.from_asgi("/v1/openapi.json", APP)
BACKFILLS = "POST /v1/connections/{c}/backfills"
#: What a schema-valid request may be answered with (schemathesis's default list, minus 5xx).
ACCEPTED = {401, 403, 404, 409, 429}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("sandbox")
    with (
        claimed_redis() as redis_url,
        sandbox_stack(directory, 50) as stack,
        pytest.MonkeyPatch.context() as patch,
    ):
        for name, value in stack.trust_env().items():
            patch.setenv(name, value)
        with ledger_env(REGSYNC_REDIS_URL=redis_url):
            beats = [
                heartbeat.HeartbeatThread(redis_url, role, f"test-{role}", 5.0) for role in ("worker", "beat")
            ]
            for beat in beats:
                beat.start()
            yield build_world(
                stack.spec_data(A),
                {"salesforce_client_secret": stack.client_secret, "registry_token": stack.registry_token},
            )
            for beat in beats:
                beat.stop()


def _backfill_accepts_valid_data(response: schemathesis.Response, case: schemathesis.Case[Any]) -> None:
    """positive_data_acceptance for backfills, where one more answer is right for a schema-valid body: 422
    INVALID_FILTER, for what only Salesforce's describe and the connection's mapping can tell (a field the
    object lacks, a value that does not fit the field's type, a country or run the connection does not have)."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    status = response.status_code
    if status == 422:
        assert response.json()["code"] == "INVALID_FILTER", response.text
    else:
        assert 200 <= status < 300 or status in ACCEPTED, (status, response.text)


@schema.auth()
class AdminKeyOfA:
    """Schemathesis's own auth hook, so that its deliberate no-key and bad-key cases stay that way."""

    key = ""

    def get(self, case: schemathesis.Case[Any], context: schemathesis.AuthContext) -> str:
        return self.key

    def set(self, case: schemathesis.Case[Any], data: str, context: schemathesis.AuthContext) -> None:
        # schemathesis annotates ``headers`` as requests' CaseInsensitiveDict; a plain dict is what it sends as well.
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}  # type: ignore[assignment, dict-item]


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_answers_within_its_published_contract(case: schemathesis.Case[Any], world: World) -> None:
    AdminKeyOfA.key = world.keys["admin"]
    if case.operation.label != BACKFILLS:
        case.call_and_validate()
        return
    response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
    _backfill_accepts_valid_data(response, case)
