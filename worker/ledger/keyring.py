"""The key ring of REGSYNC_SECRET_KEY (MultiFernet): the first key encrypts, every key decrypts.

Connection secrets (``connections/secrets``) and CRM values at rest (``ledger/sealed``) share it, so one
``regsync secret rotate`` re-encrypts both and the old key can then leave the ring.
"""

from __future__ import annotations

import binascii

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from config.settings import get_settings
from worker.errors import SecretKeyError


def cipher() -> MultiFernet:
    """The configured key ring.

    Raises:
        SecretKeyError: No key is set, or one of them is not a Fernet key.
    """
    keys = get_settings().secret_keys()
    if not keys:
        raise SecretKeyError(
            "REGSYNC_SECRET_KEY is not set, so secrets and CRM values cannot be stored or read; "
            "generate a key with `regsync secret keygen` and set REGSYNC_SECRET_KEY to it"
        )
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, binascii.Error):
            raise SecretKeyError(
                f"key #{position} in REGSYNC_SECRET_KEY is not a Fernet key "
                "(32 url-safe base64-encoded bytes); generate one with `regsync secret keygen`"
            ) from None
    return MultiFernet(fernets)


def encrypt(value: str) -> str:
    """``value`` encrypted with the primary key."""
    return cipher().encrypt(value.encode("utf-8")).decode("ascii")


def _unreadable(what: str) -> SecretKeyError:
    return SecretKeyError(
        f"{what} cannot be decrypted with REGSYNC_SECRET_KEY; it was encrypted with another key "
        "(while rotating keep the old key listed after the new one)"
    )


def decrypt(ciphertext: str, *, what: str = "a stored secret") -> str:
    """The plain value of ``ciphertext``.

    Raises:
        SecretKeyError: None of the configured keys decrypts it.
    """
    try:
        return cipher().decrypt(ciphertext.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise _unreadable(what) from None


def reencrypt(ciphertext: str, *, what: str, ring: MultiFernet | None = None) -> str:
    """``ciphertext`` encrypted again with the primary key (read with any key of the ring).

    Raises:
        SecretKeyError: None of the configured keys decrypts it.
    """
    try:
        return (ring or cipher()).rotate(ciphertext.encode("ascii")).decode("ascii")
    except InvalidToken:
        raise _unreadable(what) from None
