"""Hostile-input guards shared by every entry point: control characters, database ids, UTF-8 text files.

Control characters in an actor or a name would forge lines in the audit log and in a terminal, so they are
refused where text comes in, and escaped wherever stored text is shown (older rows may still hold them).
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from worker.errors import ConfigurationError, InsecureURL

#: Categories that change how text is laid out rather than what it says: C0/C1 controls (ESC, CR, LF…),
#: format characters (bidi overrides, zero-width), and the Unicode line and paragraph separators.
_CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
#: The largest id a ledger table holds (PostgreSQL BIGINT).
MAX_DB_ID = 2**63 - 1


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in _CONTROL_CATEGORIES


def escape_control(text: str) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``, ``\\n``, ``\\u202e``)."""
    if not any(_is_control(char) for char in text):
        return text
    return "".join(repr(char)[1:-1] if _is_control(char) else char for char in text)


def refuse_control(value: str, what: str) -> str:
    """``value`` unchanged when it holds no control character.

    Raises:
        ConfigurationError: It does; the message shows the value escaped.
    """
    if any(_is_control(char) for char in value):
        raise ConfigurationError(
            f"{what} {escape_control(value)!r} contains control characters; use printable text only"
        )
    return value


def check_db_id(value: int, kind: str) -> int:
    """``value`` when a ledger table could hold it as an id.

    Raises:
        ConfigurationError: It is below 1 or above the largest BIGINT (the database is never asked).
    """
    if not 1 <= value <= MAX_DB_ID:
        raise ConfigurationError(f"{kind} id {value} is out of range (1 to {MAX_DB_ID})")
    return value


def read_utf8(path: Path, what: str) -> str:
    """The text of a UTF-8 file (a leading byte-order mark is dropped).

    Raises:
        ConfigurationError: It does not exist, cannot be read, or is not UTF-8 text.
    """
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigurationError(f"{what} {path} does not exist") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read the {what} {path}: {exc.strerror}") from None


def refuse_userinfo(url: str, what: str) -> str:
    """``url`` when it names no user or password (``https://user:pass@host`` would be shown and audited).

    Raises:
        InsecureURL: It does; the message shows the URL without them.
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    bare = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    raise InsecureURL(
        f"{what} {bare!r} carries a user name or password before '@'; remove it "
        "(credentials are secrets: set them with `regsync secret set`)"
    )
