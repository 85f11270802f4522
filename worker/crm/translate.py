"""The one boundary where simple-salesforce and requests errors become regsync's CrmError tree.

Messages keep Salesforce's error code and (shortened) text but never the URL, the session id, the
Authorization header or a request body.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import requests
from simple_salesforce.exceptions import SalesforceError

from worker.errors import (
    CrmError,
    CrmLimitExceeded,
    CrmPermanentError,
    CrmSchemaError,
    CrmTransientError,
)

MESSAGE_MAX = 300
#: Whole-call error codes worth a retry. INVALID_QUERY_LOCATOR: a stale cursor; a retried planner queries
#: again from its own cursor (PROTOCOLS.md 3.2).
_TRANSIENT_CODES = frozenset(
    {
        "UNABLE_TO_LOCK_ROW",
        "SERVER_UNAVAILABLE",
        "REQUEST_RUNNING_TOO_LONG",
        "QUERY_TIMEOUT",
        "INVALID_QUERY_LOCATOR",
    }
)
#: Whole-call error codes that say the mapping or the integration user's rights do not fit the org: every
#: chunk would meet them, so the run fails at once (worker.errors.CrmSchemaError).
SCHEMA_CODES = frozenset(
    {
        "INVALID_FIELD",
        "INVALID_TYPE",
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        "INVALID_QUERY_FILTER_OPERATOR",
        "MALFORMED_QUERY",
        "NOT_FOUND",
        "INSUFFICIENT_ACCESS",
        "INSUFFICIENT_ACCESS_OR_READONLY",
        "API_DISABLED_FOR_ORG",
        "API_CURRENTLY_DISABLED",
        "FUNCTIONALITY_NOT_ENABLED",
    }
)
_TRANSIENT_HTTP = (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError)


def sanitize(message: str, secrets: Iterable[str | None] = ()) -> str:
    """Salesforce's text cut to MESSAGE_MAX characters, with any of ``secrets`` masked."""
    for secret in secrets:
        if secret and secret in message:
            message = message.replace(secret, "••••")
    message = " ".join(message.split())
    return message if len(message) <= MESSAGE_MAX else message[: MESSAGE_MAX - 1] + "…"


def error_code(content: Any) -> tuple[str | None, str]:
    """The first ``errorCode`` and ``message`` of a Salesforce error body (a list of error objects)."""
    first = content[0] if isinstance(content, list) and content else content
    if isinstance(first, dict):
        code = first.get("errorCode") or first.get("error")
        message = first.get("message") or first.get("error_description") or ""
        return (str(code) if code else None), str(message)
    return None, ""


def translate(exc: Exception, secrets: Iterable[str | None] = ()) -> CrmError:
    """The CrmError for a failed Salesforce call (raise it ``from exc``).

    REQUEST_LIMIT_EXCEEDED → CrmLimitExceeded; 5xx, 429, timeouts, connection errors and whole-call
    UNABLE_TO_LOCK_ROW → CrmTransientError; a field, object or access code (SCHEMA_CODES) → CrmSchemaError
    (fails the run); any other Salesforce answer → CrmPermanentError with its code; a failed TLS verification
    and everything else → CrmError.
    """
    if isinstance(exc, SalesforceError):
        return _from_salesforce(exc, list(secrets))
    if isinstance(exc, requests.exceptions.SSLError):
        return CrmError("TLS verification of Salesforce failed; check SSL_CERT_FILE / REQUESTS_CA_BUNDLE")
    if isinstance(exc, _TRANSIENT_HTTP):
        return CrmTransientError(f"Salesforce unreachable or too slow ({type(exc).__name__})")
    if isinstance(exc, requests.RequestException):
        return CrmError(f"Salesforce request failed ({type(exc).__name__})")
    if isinstance(exc, ValueError):
        return CrmError("Salesforce answered with a body that is not the expected JSON")
    return CrmError(f"Salesforce call failed ({type(exc).__name__})")


def _from_salesforce(exc: SalesforceError, secrets: list[str | None]) -> CrmError:
    code, text = error_code(exc.content)
    label = code or f"HTTP {exc.status}"
    message = f"Salesforce {label}: {sanitize(text, secrets)}" if text else f"Salesforce answered {label}"
    if code == "REQUEST_LIMIT_EXCEEDED":
        return CrmLimitExceeded(message)
    if code in _TRANSIENT_CODES or exc.status >= 500 or exc.status == 429:
        return CrmTransientError(message)
    if code in SCHEMA_CODES:
        hint = "a mapped field or the object is missing or not accessible to the integration user"
        return CrmSchemaError(f"{message} ({hint})", code=code)
    return CrmPermanentError(message, code=code or f"HTTP_{exc.status}")
