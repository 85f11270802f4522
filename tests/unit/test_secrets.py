"""Secrets are stored encrypted (MultiFernet), rotate across keys, and are only ever shown masked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from config.logging import forget_secrets, redact
from config.settings import reset_settings
from worker.connections import secrets
from worker.errors import ConfigurationError, ConnectionNotFound, SecretKeyError, SecretMissing
from worker.ledger import keyring
from worker.ledger.audit import verify_chain
from worker.ledger.db import make_engine, session_scope
from worker.ledger.models import AuditEvent, Base, Connection, Secret

TOKEN = "prf_live_8c1d0e7f5a9b4c2d1a2b"


def use_keys(monkeypatch: pytest.MonkeyPatch, *keys: str) -> None:
    if keys:
        monkeypatch.setenv("REGSYNC_SECRET_KEY", ",".join(keys))
    else:
        monkeypatch.delenv("REGSYNC_SECRET_KEY", raising=False)
    reset_settings()


@pytest.fixture(autouse=True)
def _clean_settings() -> Iterator[None]:
    reset_settings()
    yield
    reset_settings()
    forget_secrets()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    Base.metadata.create_all(engine)
    with session_scope(engine) as session:
        session.add(Connection(name="acme", spec={}, spec_hash="0" * 64))
    yield engine
    engine.dispose()


def _connection_id(session: Session) -> int:
    connection = session.scalar(select(Connection).where(Connection.name == "acme"))
    assert connection is not None
    return connection.id


def test_encrypt_decrypt_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    use_keys(monkeypatch, secrets.generate_key())

    ciphertext = keyring.encrypt(TOKEN)

    assert TOKEN not in ciphertext
    assert keyring.decrypt(ciphertext) == TOKEN


def test_a_multiline_private_key_round_trips_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    use_keys(monkeypatch, secrets.generate_key())
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"

    assert keyring.decrypt(keyring.encrypt(pem)) == pem


def test_old_key_still_decrypts_while_listed_after_the_new_one(monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = secrets.generate_key(), secrets.generate_key()
    use_keys(monkeypatch, old)
    stored = keyring.encrypt(TOKEN)

    use_keys(monkeypatch, new, old)

    assert keyring.decrypt(stored) == TOKEN


def test_a_wrong_key_raises_secret_key_error_without_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    use_keys(monkeypatch, secrets.generate_key())
    stored = keyring.encrypt(TOKEN)
    use_keys(monkeypatch, secrets.generate_key())

    with pytest.raises(SecretKeyError) as caught:
        keyring.decrypt(stored)

    assert "REGSYNC_SECRET_KEY" in caught.value.message
    assert TOKEN not in caught.value.message


def test_no_key_configured_tells_how_to_make_one(monkeypatch: pytest.MonkeyPatch) -> None:
    use_keys(monkeypatch)

    with pytest.raises(SecretKeyError) as caught:
        keyring.encrypt(TOKEN)

    assert isinstance(caught.value, ConfigurationError)
    assert "REGSYNC_SECRET_KEY" in caught.value.message
    assert "regsync secret keygen" in caught.value.message


def test_a_malformed_key_is_named_by_position_not_value(monkeypatch: pytest.MonkeyPatch) -> None:
    use_keys(monkeypatch, secrets.generate_key(), "not-a-fernet-key-1234")

    with pytest.raises(SecretKeyError) as caught:
        keyring.encrypt(TOKEN)

    assert "key #2" in caught.value.message
    assert "not-a-fernet-key-1234" not in caught.value.message


def test_generated_keys_are_fernet_keys() -> None:
    key = secrets.generate_key()

    assert Fernet(key).decrypt(Fernet(key).encrypt(b"x")) == b"x"
    assert key != secrets.generate_key()


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        (TOKEN, "••••1a2b"),
        ("abc", "••••"),
        ("", "••••"),
        ("elevenchars", "••••"),
        ("  " + TOKEN + "\n", "••••1a2b"),
    ],
)
def test_mask_shows_at_most_the_last_four_characters(value: str, masked: str) -> None:
    assert secrets.mask(value) == masked


def test_set_then_get_secret_is_encrypted_audited_masked_and_redacted(
    monkeypatch: pytest.MonkeyPatch, engine: Engine
) -> None:
    use_keys(monkeypatch, secrets.generate_key())

    with session_scope(engine) as session:
        masked = secrets.set_secret(session, "acme", "registry_token", TOKEN, "alice")
    with session_scope(engine) as session:
        value = secrets.get_secret(session, _connection_id(session), "registry_token")
        row = session.scalar(select(Secret))
        [event] = session.scalars(select(AuditEvent)).all()

    assert (masked, value) == ("••••1a2b", TOKEN)
    assert row is not None and TOKEN not in row.ciphertext and row.mask == masked
    assert (event.action, event.actor, event.before, event.after) == (
        "secret.set",
        "alice",
        None,
        {"mask": masked},
    )
    assert TOKEN not in str(event.after)
    assert TOKEN not in redact(f"calling with {TOKEN}")


def test_setting_a_secret_again_replaces_it_and_audits_old_and_new_masks(
    monkeypatch: pytest.MonkeyPatch, engine: Engine
) -> None:
    use_keys(monkeypatch, secrets.generate_key())
    with session_scope(engine) as session:
        secrets.set_secret(session, "acme", "registry_token", TOKEN, "alice")
    with session_scope(engine) as session:
        secrets.set_secret(session, "acme", "registry_token", "prf_live_ffffffffffff9999", "bob")

    with session_scope(engine) as session:
        assert secrets.get_secret(session, _connection_id(session), "registry_token").endswith("9999")
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        assert len(session.scalars(select(Secret)).all()) == 1
    assert (events[-1].before, events[-1].after) == ({"mask": "••••1a2b"}, {"mask": "••••9999"})


def test_a_missing_secret_names_the_command_that_sets_it(
    monkeypatch: pytest.MonkeyPatch, engine: Engine
) -> None:
    use_keys(monkeypatch, secrets.generate_key())

    with session_scope(engine) as session, pytest.raises(SecretMissing) as caught:
        secrets.get_secret(session, _connection_id(session), "salesforce_client_secret")

    assert "regsync secret set acme salesforce_client_secret" in caught.value.message


def test_unknown_names_empty_values_and_unknown_connections_are_refused(
    monkeypatch: pytest.MonkeyPatch, engine: Engine
) -> None:
    use_keys(monkeypatch, secrets.generate_key())

    with session_scope(engine) as session:
        with pytest.raises(ConfigurationError, match="allowed"):
            secrets.set_secret(session, "acme", "password", TOKEN, "alice")
        with pytest.raises(ConfigurationError, match="empty"):
            secrets.set_secret(session, "acme", "registry_token", " \n", "alice")
        with pytest.raises(ConnectionNotFound):
            secrets.set_secret(session, "nope", "registry_token", TOKEN, "alice")


def test_rotate_reencrypts_every_secret_with_the_primary_key(
    monkeypatch: pytest.MonkeyPatch, engine: Engine
) -> None:
    old, new = secrets.generate_key(), secrets.generate_key()
    use_keys(monkeypatch, old)
    with session_scope(engine) as session:
        secrets.set_secret(session, "acme", "registry_token", TOKEN, "alice")

    use_keys(monkeypatch, new, old)
    with session_scope(engine) as session:
        assert secrets.rotate(session, "alice") == 1

    use_keys(monkeypatch, new)
    with session_scope(engine) as session:
        assert secrets.get_secret(session, _connection_id(session), "registry_token") == TOKEN
        assert verify_chain(session).checked == 2


def test_rotate_without_the_old_key_changes_nothing(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> None:
    old = secrets.generate_key()
    use_keys(monkeypatch, old)
    with session_scope(engine) as session:
        secrets.set_secret(session, "acme", "registry_token", TOKEN, "alice")

    use_keys(monkeypatch, secrets.generate_key())
    with pytest.raises(SecretKeyError, match="registry_token"), session_scope(engine) as session:
        secrets.rotate(session, "alice")

    use_keys(monkeypatch, old)
    with session_scope(engine) as session:
        assert secrets.get_secret(session, _connection_id(session), "registry_token") == TOKEN
