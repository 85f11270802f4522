"""The CRM error boundary: simple-salesforce / requests failures become transient or permanent CrmErrors."""

from __future__ import annotations

import pytest
import requests
from simple_salesforce.exceptions import (
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

from worker.crm.translate import MESSAGE_MAX, sanitize, translate
from worker.errors import CrmError, CrmLimitExceeded, CrmTransientError

URL = "https://org.example/services/data/v62.0/query/?q=SELECT+Id+FROM+Account"


def body(code: str, message: str = "text") -> list[dict[str, str]]:
    return [{"errorCode": code, "message": message}]


@pytest.mark.parametrize(
    ("exc", "expected", "transient"),
    [
        (SalesforceRefusedRequest(URL, 403, "q", body("REQUEST_LIMIT_EXCEEDED")), CrmLimitExceeded, False),
        (SalesforceMalformedRequest(URL, 400, "q", body("UNABLE_TO_LOCK_ROW")), CrmTransientError, True),
        (SalesforceGeneralError(URL, 503, "q", "Service Unavailable"), CrmTransientError, True),
        (SalesforceGeneralError(URL, 429, "q", body("TOO_MANY")), CrmTransientError, True),
        (SalesforceMalformedRequest(URL, 400, "q", body("INVALID_FIELD")), CrmError, False),
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
    assert message == "Salesforce INVALID_FIELD: No such column 'X' for ••••"
    assert "https://" not in message


def test_sanitize_cuts_to_the_limit() -> None:
    assert len(sanitize("x" * 1000)) == MESSAGE_MAX
    assert sanitize("a\n  b") == "a b"
