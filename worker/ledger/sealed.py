"""CRM values at rest: a JSON column whose value is stored encrypted with the secrets' key ring.

A sealed value is a JSON string ``"sealed:v1:<Fernet token>"`` of the value's JSON text, so the column keeps its
JSON type (no migration) and a ledger dump shows no CRM value in clear text. Reading decrypts transparently.
Rows written before sealing existed hold the plain value; they are read as they are and sealed by
``regsync secret rotate`` (``reseal``), which also moves every sealed value to the primary key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import JSON, TypeDecorator, or_, select
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.orm.attributes import flag_modified

from worker.ledger import keyring

PREFIX = "sealed:v1:"
#: Rows read and rewritten per batch while resealing.
BATCH = 500


class SealedJSON(TypeDecorator[Any]):
    """JSON stored encrypted; None stays NULL, so "is there a value" can still be asked in SQL."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return seal(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return unseal(value)


def seal(value: Any) -> str:
    """``value`` as stored: its JSON text encrypted with the primary key, prefixed."""
    return PREFIX + keyring.encrypt(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def is_sealed(stored: Any) -> bool:
    return isinstance(stored, str) and stored.startswith(PREFIX)


def unseal(stored: Any) -> Any:
    """The value ``stored`` holds; a value written before sealing (plain JSON) comes back as it is.

    Raises:
        SecretKeyError: No key of REGSYNC_SECRET_KEY decrypts it.
    """
    if not is_sealed(stored):
        return stored
    text = keyring.decrypt(stored.removeprefix(PREFIX), what="a stored CRM value (sample or review value)")
    return json.loads(text)


def _batches(session: Session, columns: Sequence[InstrumentedAttribute[Any]]) -> Iterator[list[Any]]:
    model = columns[0].class_
    primary = model.__mapper__.primary_key[0]
    holds_value = or_(*(column.is_not(None) for column in columns))
    last: Any = None
    while True:
        query = select(model).where(holds_value).order_by(primary).limit(BATCH)
        if last is not None:
            query = query.where(primary > last)
        rows = list(session.scalars(query))
        if not rows:
            return
        yield rows
        last = getattr(rows[-1], primary.key)


def reseal(session: Session, columns: Sequence[InstrumentedAttribute[Any]]) -> int:
    """Write the values of ``columns`` (sealed columns of one table) again, sealed with the primary key; values
    stored before sealing existed are sealed now.

    Returns:
        How many rows were rewritten.

    Raises:
        SecretKeyError: No key is set, or a value cannot be decrypted with any configured key (the caller's
            transaction is then rolled back, so nothing is changed).
    """
    keyring.cipher()  # no key: fail before reading a row
    rewritten = 0
    for rows in _batches(session, columns):
        for row in rows:
            held = [column.key for column in columns if getattr(row, column.key) is not None]
            for key in held:
                flag_modified(row, key)
            rewritten += bool(held)
        session.flush()
        for row in rows:
            session.expunge(row)
    return rewritten
