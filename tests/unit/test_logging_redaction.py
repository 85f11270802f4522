"""No secret reaches a log line: registered values and credential shapes are scrubbed from every logger."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from config.logging import (
    REDACTED,
    configure_logging,
    forget_secrets,
    install_redaction,
    redact,
    register_secret,
)

SECRET = "s3cr3t-Value/with+chars=="
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIzTVZHOSIsInN1YiI6InUifQ.c2lnbmF0dXJlLWJ5dGVz"
SESSION_ID = "00D5g000004XyZa!AQ0AQH8fakeSessionIdValue.abc_DEF123"


@pytest.fixture
def log() -> Iterator[io.StringIO]:
    """Logging configured as a regsync process does, writing into a buffer; restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("json", "DEBUG", stream=stream)
    yield stream
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    forget_secrets()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize(
    "name", ["regsync.sync", "urllib3.connectionpool", "httpx", "celery.worker", "simple_salesforce"]
)
def test_registered_secret_is_scrubbed_from_any_logger(log: io.StringIO, name: str) -> None:
    register_secret(SECRET)

    logging.getLogger(name).info("sending %s to %s", SECRET, "host", extra={"provider": f"p {SECRET}"})

    [entry] = lines(log)
    assert SECRET not in log.getvalue()
    assert entry["msg"] == f"sending {REDACTED} to host"
    assert entry["provider"] == f"p {REDACTED}"
    assert entry["logger"] == name


def test_exception_text_is_scrubbed(log: io.StringIO) -> None:
    register_secret(SECRET)
    try:
        raise ValueError(f"bad token {SECRET}")
    except ValueError:
        logging.getLogger("regsync").exception("lookup failed")

    [entry] = lines(log)
    assert SECRET not in log.getvalue()
    assert "ValueError" in str(entry["exc"])


def test_derived_forms_of_a_secret_are_scrubbed() -> None:
    register_secret(SECRET)
    forms = [quote(SECRET, safe=""), base64.b64encode(SECRET.encode()).decode(), json.dumps(SECRET)]

    for form in forms:
        assert SECRET not in redact(f"x {form} y")
        assert form.strip('"') not in redact(f"x {form} y")


def test_short_values_are_not_registered() -> None:
    register_secret("abc")

    assert redact("abc abcdef") == "abc abcdef"


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Token abcdef0123456789",
        "{'Authorization': 'Bearer abcdefghijklmnop'}",
        "got Bearer abcdefghijklmnop back",
        "header Token 0123456789abcdef",
        "access_token=abcdef0123456789&instance_url=https://x",
        '{"access_token": "abcdef0123456789", "token_type": "Bearer"}',
        "grant_type=client_credentials&client_secret=abcdef0123456789",
        "grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=abcdef0123456789",
        f"jwt {JWT} sent",
        f"sid={SESSION_ID}",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAabcdef\n-----END RSA PRIVATE KEY-----",
        "postgresql+psycopg://regsync:abcdef0123456789@db.internal:5432/ledger",
    ],
)
def test_credential_shapes_are_scrubbed_without_registration(text: str) -> None:
    scrubbed = redact(text)

    assert REDACTED in scrubbed
    for leaked in ("abcdef0123456789", "abcdefghijklmnop", JWT, SESSION_ID, "MIIEpAIBAAKCAQEAabcdef"):
        assert leaked not in scrubbed


@pytest.mark.parametrize(
    "text",
    [
        "registry token rejected",
        "token expired, re-authenticating",
        "the bearer of this notice",
        "run 42 done",
    ],
)
def test_ordinary_prose_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_json_lines_carry_the_standard_and_extra_keys(log: io.StringIO) -> None:
    logging.getLogger("regsync.run").warning(
        "chunk %d done", 7, extra={"correlation_id": "c-1", "run_id": 3, "chunk_id": 7, "status": "done"}
    )

    [entry] = lines(log)
    assert entry["level"] == "WARNING"
    assert entry["msg"] == "chunk 7 done"
    assert str(entry["ts"]).endswith("+00:00")
    assert (entry["correlation_id"], entry["run_id"], entry["chunk_id"], entry["status"]) == (
        "c-1",
        3,
        7,
        "done",
    )


def test_console_lines_are_readable_and_scrubbed() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        configure_logging("console", "INFO", stream=stream)
        logging.getLogger("httpx").info("GET with Bearer abcdefghijklmnop", extra={"run_id": 5})
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)

    line = stream.getvalue().strip()
    assert "INFO" in line and "httpx: GET with Bearer [redacted]" in line and line.endswith("run_id=5")


def test_configuring_twice_keeps_one_handler(log: io.StringIO) -> None:
    configure_logging("json", "INFO", stream=log)

    ours = [h for h in logging.getLogger().handlers if getattr(h, "_regsync", False)]
    assert len(ours) == 1


def test_a_record_whose_args_do_not_fit_is_still_logged(log: io.StringIO) -> None:
    register_secret(SECRET)

    logging.getLogger("regsync").error("two %s %s", SECRET)  # noqa: PLE1206 (the point of the test)

    assert SECRET not in log.getvalue()
    assert len(lines(log)) == 1


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log format"):
        configure_logging("xml", "INFO")  # type: ignore[arg-type]


def test_install_redaction_covers_handlers_installed_by_others() -> None:
    logger = logging.getLogger("regsync.test.foreign")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        install_redaction(logger)
        install_redaction(logger)
        logger.warning("Authorization: Bearer abcdefghijklmnop")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True

    assert stream.getvalue().strip() == f"Authorization: {REDACTED}"
    assert len(handler.filters) == 1
