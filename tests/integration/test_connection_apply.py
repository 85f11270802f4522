"""Applying a connection spec is idempotent and audited with a field-by-field diff."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select

from worker.connections.apply import apply_connection, diff_specs, flatten, load_connection
from worker.connections.spec import ConnectionSpec, parse_spec
from worker.errors import ConnectionNotFound
from worker.ledger.audit import verify_chain
from worker.ledger.db import make_engine, session_scope
from worker.ledger.models import AuditEvent, Connection


def _spec(**salesforce: Any) -> ConnectionSpec:
    data: dict[str, Any] = {
        "name": "acme",
        "salesforce": {
            "token_url": "https://acme.my.salesforce.com/services/oauth2/token",
            "client_id": "3MVG9abc",
            "org_number_field": "OrgNr__c",
            "country": "NO",
            **salesforce,
        },
        "registry": {"provider": "brreg", "base_url": "https://data.brreg.no/enhetsregisteret/api"},
        "mapping": {"name": {"field": "Name"}, "city": {"field": "BillingCity", "policy": "fill_blank"}},
    }
    return parse_spec(data)


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


def _events(engine: Engine) -> list[AuditEvent]:
    with session_scope(engine) as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def test_first_apply_creates_the_connection_and_audits_it(engine: Engine) -> None:
    with session_scope(engine) as session:
        result = apply_connection(session, _spec(), "alice")

    assert result.action == "created"
    assert result.diff["salesforce.client_id"] == [None, "3MVG9abc"]
    with session_scope(engine) as session:
        connection, spec = load_connection(session, "acme")
    assert connection.id == result.connection_id
    assert spec == _spec()
    assert connection.spec == _spec().model_dump(mode="json")
    assert not connection.enabled
    [event] = _events(engine)
    assert (event.actor, event.action, event.target, event.before) == (
        "alice",
        "connection.create",
        "connection:acme",
        None,
    )
    assert event.after is not None and event.after["mapping.city.policy"] == "fill_blank"


def test_applying_the_same_spec_again_changes_nothing(engine: Engine) -> None:
    with session_scope(engine) as session:
        first = apply_connection(session, _spec(), "alice")
    with session_scope(engine) as session:
        again = apply_connection(session, _spec(), "bob")

    assert (again.action, again.connection_id, again.diff) == ("unchanged", first.connection_id, {})
    assert len(_events(engine)) == 1


def test_a_changed_spec_is_updated_with_a_dotted_diff(engine: Engine) -> None:
    with session_scope(engine) as session:
        apply_connection(session, _spec(), "alice")
    with session_scope(engine) as session:
        result = apply_connection(session, _spec(client_id="3MVG9xyz", api_version="61.0"), "bob")

    assert result.action == "updated"
    assert result.diff == {
        "salesforce.api_version": ["62.0", "61.0"],
        "salesforce.client_id": ["3MVG9abc", "3MVG9xyz"],
    }
    update = _events(engine)[-1]
    assert update.action == "connection.update"
    assert update.before == {"salesforce.api_version": "62.0", "salesforce.client_id": "3MVG9abc"}
    assert update.after == {"salesforce.api_version": "61.0", "salesforce.client_id": "3MVG9xyz"}
    with session_scope(engine) as session:
        assert verify_chain(session).ok
        stored = session.scalar(select(Connection).where(Connection.name == "acme"))
        assert stored is not None and stored.spec["salesforce"]["client_id"] == "3MVG9xyz"


def test_loading_an_unknown_connection_names_the_commands(engine: Engine) -> None:
    with session_scope(engine) as session, pytest.raises(ConnectionNotFound) as caught:
        load_connection(session, "nope")

    assert "regsync connection list" in caught.value.message


def test_flatten_and_diff_use_dotted_keys() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": None}}, "e": [1]}) == {"a.b": 1, "a.c.d": None, "e": [1]}
    assert diff_specs({"a": {"b": 1}}, {"a": {"b": 2, "c": 3}}) == {"a.b": [1, 2], "a.c": [None, 3]}
