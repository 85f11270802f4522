"""Logging for every regsync process: JSON lines or console lines on stderr, with secrets scrubbed.

The :class:`RedactingFilter` sits on the root handler, so records of third-party loggers (urllib3, httpx,
celery, simple_salesforce) are scrubbed too. Values registered with :func:`register_secret` are replaced
wherever they appear; well-known credential shapes (authorization headers, bearer tokens, OAuth fields,
JWTs, Salesforce session ids, PEM private keys) are replaced by pattern even when nobody registered them.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re
import sys
import threading
from typing import IO, Any, Literal
from urllib.parse import quote, quote_plus

LogFormat = Literal["json", "console"]

REDACTED = "[redacted]"
# Registering a very short value would scrub ordinary words everywhere; real credentials are longer.
MIN_SECRET_LENGTH = 6

_KEY_NAMES = (
    "access_token|refresh_token|id_token|client_secret|assertion|password|private_key|registry_token"
    "|session_id|sessionid"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S),
        REDACTED,
    ),
    (re.compile(r"(?i)(\bauthorization\b['\"]?\s*[:=]\s*['\"]?)[^'\"\r\n]+"), rf"\1{REDACTED}"),
    (re.compile(rf"(?i)(['\"]?\b(?:{_KEY_NAMES})\b['\"]?\s*[:=]\s*['\"]?)[^'\"&\s,;}}]+"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9\-._~+/!]{8,}=*"), rf"\1{REDACTED}"),
    # "Token <value>" (the registry's scheme) only when the value looks like one, so prose stays readable.
    (re.compile(r"(?i)(\btoken\s+)(?=[A-Za-z0-9\-._~+/]*\d)[A-Za-z0-9\-._~+/]{8,}=*"), rf"\1{REDACTED}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"\b00D[A-Za-z0-9]{12,15}![A-Za-z0-9._\-]{16,}"), REDACTED),
    # user:password@ in URLs (database and broker URLs in error messages).
    (re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)[^@\s/]+@"), rf"\1{REDACTED}@"),
)

_SENSITIVE_KEY = re.compile(rf"(?i)(?:{_KEY_NAMES}|authorization|secret|token)")


class _SecretRegistry:
    """The process-wide set of secret values, with one compiled pattern that matches any of them."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self.pattern: re.Pattern[str] | None = None

    def add(self, forms: set[str]) -> None:
        with self._lock:
            if forms <= self._values:
                return
            self._values.update(forms)
            ordered = sorted(self._values, key=len, reverse=True)
            self.pattern = re.compile("|".join(re.escape(form) for form in ordered))

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self.pattern = None


_registry = _SecretRegistry()


def _derived_forms(value: str) -> set[str]:
    """The ways a secret tends to show up in logs besides verbatim: quoted, escaped, encoded, line by line."""
    raw = value.strip()
    forms = {value, raw, quote(raw, safe=""), quote_plus(raw), json.dumps(raw)[1:-1]}
    forms.add(raw.encode("unicode_escape").decode("ascii"))
    encoded = raw.encode("utf-8")
    forms.add(base64.b64encode(encoded).decode("ascii"))
    forms.add(base64.urlsafe_b64encode(encoded).decode("ascii").rstrip("="))
    lines = [line.strip() for line in raw.splitlines()]
    forms.update(line for line in lines if len(line) >= 16)
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def register_secret(value: str | None) -> None:
    """Remember ``value`` (and its obvious derived forms) so that no log line or message ever shows it.

    Args:
        value: A credential this process now holds. Values shorter than ``MIN_SECRET_LENGTH`` are ignored.
    """
    if value and len(value.strip()) >= MIN_SECRET_LENGTH:
        _registry.add(_derived_forms(value))


def forget_secrets() -> None:
    """Forget every registered secret (tests only)."""
    _registry.clear()


def redact(text: str) -> str:
    """``text`` with registered secrets and credential-shaped substrings replaced by ``[redacted]``.

    Args:
        text: Any text about to leave the process: a log line, an error message, a CLI message.

    Returns:
        The scrubbed text.
    """
    pattern = _registry.pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for regex, replacement in _PATTERNS:
        text = regex.sub(replacement, text)
    return text


_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD_ATTRS}


def _message_of(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except (TypeError, ValueError):
        return f"{record.msg} {record.args!r}"


def _redact_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {
            key: REDACTED if _SENSITIVE_KEY.fullmatch(str(key)) else _redact_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    return redact(str(value))


class RedactingFilter(logging.Filter):
    """Scrubs the formatted message, its args, extra fields, exception and stack text of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(_message_of(record))
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in _extras(record).items():
            setattr(record, key, _redact_value(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the record's extra keys, and exc when present."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """A readable line: time, level, logger, message, then ``key=value`` for each extra key."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = " ".join(f"{key}={value}" for key, value in _extras(record).items())
        if not extras:
            return line
        head, sep, tail = line.partition("\n")
        return f"{head} {extras}{sep}{tail}"


class _CurrentStderr:
    """Whatever ``sys.stderr`` is at the time of each write, not at set-up: while a rich progress bar is live
    it redirects ``sys.stderr`` above the bar, so a warning logged during a run prints above the bar instead
    of inside it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_FORMATTERS: dict[str, type[logging.Formatter]] = {"json": JsonFormatter, "console": ConsoleFormatter}


def configure_logging(
    fmt: LogFormat = "console", level: str | int = "INFO", stream: IO[str] | None = None
) -> None:
    """Send all logging to one stderr handler in ``fmt``, with the redacting filter installed.

    Calling it again replaces the handler it installed before; other handlers are left alone.

    Args:
        fmt: ``json`` (one object per line, for collectors) or ``console`` (for people).
        level: The root level, a name such as ``INFO`` or a number.
        stream: Where to write; stderr when omitted.

    Raises:
        ValueError: ``fmt`` or ``level`` is not known.
    """
    if fmt not in _FORMATTERS:
        raise ValueError(f"log format must be one of {sorted(_FORMATTERS)}, not {fmt!r}")
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_regsync", False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream or _CurrentStderr())
    handler._regsync = True  # type: ignore[attr-defined]
    handler.setFormatter(_FORMATTERS[fmt]())
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)


#: Third-party loggers whose INFO lines say nothing an operator acts on (alembic lists its plugins at every
#: upgrade); their warnings and errors still show.
_CHATTY = ("alembic.runtime.plugins",)


def quieten(*names: str, level: int = logging.WARNING) -> None:
    """Show only ``level`` and above from the loggers ``names`` (the demo: alembic lists every migration and
    kombu explains the memory transport, which tells a newcomer nothing)."""
    for name in names:
        logging.getLogger(name).setLevel(level)


def install_redaction(logger: logging.Logger | None = None) -> None:
    """Add the redacting filter to every handler of ``logger`` (root by default) that lacks one.

    For handlers regsync did not install, e.g. Celery's after it set up its own logging
    (call it from Celery's ``after_setup_logger`` / ``after_setup_task_logger`` signals).
    """
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(existing, RedactingFilter) for existing in handler.filters):
            handler.addFilter(RedactingFilter())
