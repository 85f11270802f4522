"""Encrypted storage of connection secrets (MultiFernet over REGSYNC_SECRET_KEY, ``ledger/keyring``).

The first configured key encrypts, every key decrypts, so keys can be rotated: prepend a new key, run
``regsync secret rotate`` (it re-encrypts the sealed CRM values too), then drop the old one. Plain values never
leave this module except to the code that uses them, and every value read is registered with the log redactor first.
"""

from __future__ import annotations

from enum import StrEnum

from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.logging import register_secret
from worker.changes.models import ChangeEvent
from worker.errors import ConfigurationError, ConnectionNotFound, SecretMissing
from worker.ledger import sealed
from worker.ledger.audit import append_event
from worker.ledger.backfill_models import RunFieldChange
from worker.ledger.keyring import cipher, decrypt, encrypt, reencrypt
from worker.ledger.models import Connection, Secret, utcnow

MASK = "••••"
# Showing the last 4 characters of a short value would give away too much of it.
MIN_LENGTH_TO_SHOW_TAIL = 12


class SecretName(StrEnum):
    """The secrets a connection can have."""

    REGISTRY_TOKEN = "registry_token"  # noqa: S105 (a name, not a value)
    SALESFORCE_CLIENT_SECRET = "salesforce_client_secret"  # noqa: S105
    SALESFORCE_PRIVATE_KEY = "salesforce_private_key"
    WEBHOOK_SIGNING_KEY = "webhook_signing_key"  # alert webhooks (HMAC-SHA256)
    SMTP_PASSWORD = "smtp_password"  # noqa: S105  alert email


ALLOWED_NAMES: tuple[str, ...] = tuple(name.value for name in SecretName)


def generate_key() -> str:
    """A new random Fernet key (url-safe base64 text) for REGSYNC_SECRET_KEY."""
    return Fernet.generate_key().decode("ascii")


def mask(value: str) -> str:
    """``••••`` plus the last 4 characters of ``value``; only ``••••`` for short values."""
    value = value.strip()
    if len(value) < MIN_LENGTH_TO_SHOW_TAIL:
        return MASK
    return MASK + value[-4:]


def _check_name(name: str) -> str:
    if name not in ALLOWED_NAMES:
        raise ConfigurationError(f"unknown secret name {name!r}; allowed: {', '.join(ALLOWED_NAMES)}")
    return name


def _connection(session: Session, name: str) -> Connection:
    connection = session.scalar(select(Connection).where(Connection.name == name))
    if connection is None:
        raise ConnectionNotFound(
            f"no connection named {name!r}; apply it first with `regsync connection apply FILE`"
        )
    return connection


def _stored(session: Session, connection_id: int, name: str) -> Secret | None:
    return session.scalar(select(Secret).where(Secret.connection_id == connection_id, Secret.name == name))


def set_secret(session: Session, connection_name: str, name: str, value: str, actor: str) -> str:
    """Store (or replace) one secret of a connection, encrypted, and audit it with masked values only.

    Args:
        session: A session on the ledger; the caller commits.
        connection_name: The connection the secret belongs to.
        name: One of ``ALLOWED_NAMES``.
        value: The plain secret.
        actor: Who sets it, for the audit trail.

    Returns:
        The masked value, e.g. ``••••1a2b``.

    Raises:
        ConfigurationError: Unknown name or empty value.
        ConnectionNotFound: No such connection.
        SecretKeyError: No usable REGSYNC_SECRET_KEY.
    """
    _check_name(name)
    if not value.strip():
        raise ConfigurationError(f"the value for {name} is empty; nothing was stored")
    register_secret(value)
    connection = _connection(session, connection_name)
    ciphertext, masked = encrypt(value), mask(value)
    stored = _stored(session, connection.id, name)
    before = None if stored is None else {"mask": stored.mask}
    if stored is None:
        session.add(Secret(connection_id=connection.id, name=name, ciphertext=ciphertext, mask=masked))
    else:
        stored.ciphertext, stored.mask, stored.set_at = ciphertext, masked, utcnow()
    append_event(
        session,
        actor=actor,
        action="secret.set",
        target=f"connection:{connection_name}/secret:{name}",
        before=before,
        after={"mask": masked},
    )
    return masked


def get_secret(session: Session, connection_id: int, name: str) -> str:
    """The plain value of one secret of a connection, registered with the log redactor.

    Raises:
        SecretMissing: The secret is not set (the message names the command that sets it).
        SecretKeyError: It cannot be decrypted with the configured keys.
    """
    _check_name(name)
    stored = _stored(session, connection_id, name)
    if stored is None:
        connection = session.get(Connection, connection_id)
        label = connection.name if connection is not None else f"#{connection_id}"
        raise SecretMissing(
            f"secret {name} is not set for connection {label}; set it with "
            f"`regsync secret set {label} {name}` (the value is read from standard input)"
        )
    value = decrypt(stored.ciphertext, what=f"secret {name} of connection #{connection_id}")
    register_secret(value)
    return value


def secret_masks(session: Session, connection_id: int) -> dict[str, str]:
    """The masked values of the secrets set for a connection, by name."""
    rows = session.scalars(select(Secret).where(Secret.connection_id == connection_id).order_by(Secret.name))
    return {row.name: row.mask for row in rows}


#: The sealed CRM values (``ledger/sealed``), per table: rotation re-encrypts them with the secrets.
SEALED_COLUMNS = ((RunFieldChange.samples,), (ChangeEvent.old_value, ChangeEvent.new_value))


def rotate(session: Session, actor: str) -> int:
    """Re-encrypt every stored secret, dry-run sample and review value with the primary key, so older keys can
    be removed afterwards (samples and review values stored before encryption existed are encrypted now).

    Returns:
        How many secrets were re-encrypted.

    Raises:
        SecretKeyError: A secret or a value cannot be decrypted with any configured key (nothing is changed).
    """
    ring = cipher()
    rows = list(session.scalars(select(Secret).order_by(Secret.id)))
    for row in rows:
        what = f"secret {row.name} of connection #{row.connection_id}"
        row.ciphertext = reencrypt(row.ciphertext, what=what, ring=ring)
    values = sum(sealed.reseal(session, columns) for columns in SEALED_COLUMNS)
    after = {"reencrypted": len(rows), "crm_values": values}
    append_event(session, actor=actor, action="secret.rotate", target="secrets", after=after)
    return len(rows)
