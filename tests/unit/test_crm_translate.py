"""The CRM error boundary: simple-salesforce / requests failures become transient or permanent CrmErrors."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from simple_salesforce.exceptions import (
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

from worker.crm.translate import MESSAGE_MAX, sanitize, translate
from worker.errors import (
    CrmError,
    CrmLimitExceeded,
    CrmPermanentError,
    CrmSchemaError,
    CrmTransientError,
    fails_run,
)

URL = "https://org.example/services/data/v62.0/query/?q=SELECT+Id+FROM+Account"


def body(code: str, message: str = "text") -> Any:
    """Salesforce's error body, parsed: simple-salesforce annotates ``content`` as bytes but raises with the JSON."""
    return [{"errorCode": code, "message": message}]


@pytest.mark.parametrize(
    ("exc", "expected", "transient"),
    [
        (SalesforceRefusedRequest(URL, 403, "q", body("REQUEST_LIMIT_EXCEEDED")), CrmLimitExceeded, False),
        (SalesforceMalformedRequest(URL, 400, "q", body("UNABLE_TO_LOCK_ROW")), CrmTransientError, True),
        (SalesforceGeneralError(URL, 503, "q", b"Service Unavailable"), CrmTransientError, True),
        (SalesforceGeneralError(URL, 429, "q", body("TOO_MANY")), CrmTransientError, True),
        (SalesforceMalformedRequest(URL, 400, "q", body("INVALID_FIELD")), CrmSchemaError, False),
        (SalesforceMalformedRequest(URL, 400, "q", body("INVALID_QUERY_LOCATOR")), CrmTransientError, True),
        (SalesforceMalformedRequest(URL, 400, "q", body("JSON_PARSER_ERROR")), CrmPermanentError, False),
        (requests.ReadTimeout("read timed out"), CrmTransientError, True),
        (requests.ConnectionError("refused"), CrmTransientError, True),
        (requests.exceptions.SSLError("bad cert"), CrmError, False),
        (ValueError("Expecting value"), CrmError, False),
    ],
)
def test_translation(exc: Exception, expected: type[CrmError], transient: bool) -> None:
    error = translate(exc)
    assert type(error) is expected
    assert error.transient is transient


def test_message_keeps_code_and_text_but_not_url_or_secrets() -> None:
    exc = SalesforceMalformedRequest(URL, 400, "q", body("INVALID_FIELD", "No such column 'X' for tok-123"))
    message = translate(exc, ["tok-123"]).message
    assert message.startswith("Salesforce INVALID_FIELD: No such column 'X' for •••• (a mapped field")
    assert "https://" not in message


@pytest.mark.parametrize(
    ("code", "status", "run_wide"),
    [
        ("INVALID_FIELD", 400, True),
        ("INVALID_TYPE", 400, True),
        ("NOT_FOUND", 404, True),
        ("INSUFFICIENT_ACCESS", 403, True),
        ("JSON_PARSER_ERROR", 400, False),
        ("UNABLE_TO_LOCK_ROW", 400, False),
    ],
)
def test_object_and_field_codes_fail_the_run_with_salesforces_code(
    code: str, status: int, run_wide: bool
) -> None:
    error = translate(SalesforceMalformedRequest(URL, status, "q", body(code)))
    assert fails_run(error) is run_wide
    assert error.code == (code if code != "UNABLE_TO_LOCK_ROW" else "CRM_TRANSIENT")


def test_sanitize_cuts_to_the_limit() -> None:
    assert len(sanitize("x" * 1000)) == MESSAGE_MAX
    assert sanitize("a\n  b") == "a b"
