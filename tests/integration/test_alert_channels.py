"""Alert channels against real local servers over TLS: a signed webhook (verified by the receiver with plain
hmac), retries with backoff, a permanent 4xx; SMTP with STARTTLS and AUTH (aiosmtpd), plain-text SMTP refused;
the SIEM feed over TLS syslog."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.alert_receivers import SyslogCollector, WebhookReceiver, smtp_server
from worker.alerts.channels import EmailChannel, WebhookChannel
from worker.alerts.config import EmailChannelSpec, WebhookChannelSpec
from worker.alerts.payload import Notice, check_notice
from worker.alerts.siem import SyslogSink
from worker.errors import ChannelError, ChannelRejected
from worker.sandbox.tls import SandboxCA

KEY = "whsec-" + "k" * 32
NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SandboxCA:
    authority = SandboxCA(tmp_path / "ca")
    monkeypatch.setenv("SSL_CERT_FILE", str(authority.bundle_path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(authority.bundle_path))
    return authority


@pytest.fixture
def receiver(ca: SandboxCA) -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(ca, KEY).start()
    yield server
    server.stop()


def notice() -> Notice:
    return check_notice("acme", 1, NOW, "admin")


def webhook(receiver: WebhookReceiver, sleeps: list[float], key: str = KEY) -> WebhookChannel:
    spec = WebhookChannelSpec(type="webhook", url=receiver.url, timeout_s=5)
    return WebhookChannel("ops", spec, key, attempts=3, backoff_s=0.5, sleep=sleeps.append)


def test_webhook_posts_signed_json_that_the_receiver_verifies(receiver: WebhookReceiver) -> None:
    sent = notice()

    webhook(receiver, []).send(sent)

    (got,) = receiver.received
    assert got.signature_ok
    assert got.payload == sent.payload and got.body == sent.body()
    assert got.headers["x-regsync-event-id"] == sent.event_id


def test_webhook_signed_with_another_key_fails_verification(receiver: WebhookReceiver) -> None:
    webhook(receiver, [], key="not-the-shared-key").send(notice())

    assert [w.signature_ok for w in receiver.received] == [False]


def test_webhook_retries_5xx_with_backoff_then_gives_up_transiently(receiver: WebhookReceiver) -> None:
    receiver.status, sleeps = 503, list[float]()

    with pytest.raises(ChannelError, match="after 3 attempts"):
        webhook(receiver, sleeps).send(notice())

    assert len(receiver.received) == 3 and sleeps == [0.5, 1.0]


def test_webhook_permanent_4xx_is_rejected_without_retry(receiver: WebhookReceiver) -> None:
    receiver.status = 410

    with pytest.raises(ChannelRejected, match="HTTP 410") as caught:
        webhook(receiver, []).send(notice())

    assert len(receiver.received) == 1
    assert receiver.url not in caught.value.message  # URLs may embed tokens: never in messages


def test_webhook_to_an_untrusted_certificate_is_not_delivered(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")

    with pytest.raises(ChannelRejected, match="not trusted"):
        webhook(receiver, []).send(notice())

    assert receiver.received == []


def email(port: int, password: str) -> EmailChannel:
    spec = EmailChannelSpec(
        type="email",
        host="127.0.0.1",
        port=port,
        sender="regsync@example.com",
        to=["oncall@example.com"],
        username="regsync",
    )
    return EmailChannel("mail", spec, password)


def test_email_goes_over_starttls_with_login(ca: SandboxCA) -> None:
    with smtp_server(ca, "regsync", "smtp-pass-123") as (port, mails):
        email(port, "smtp-pass-123").send(notice())

    (mail,) = mails
    assert mail.tls and mail.login == "regsync"
    assert mail.message["Subject"] == "[regsync] test notice for acme"
    assert mail.message["To"] == "oncall@example.com"


def test_email_wrong_password_is_a_permanent_rejection(ca: SandboxCA) -> None:
    with (
        smtp_server(ca, "regsync", "smtp-pass-123") as (port, mails),
        pytest.raises(ChannelRejected, match="login"),
    ):
        email(port, "wrong").send(notice())
    assert mails == []


def test_email_is_never_sent_in_plain_text(ca: SandboxCA) -> None:
    with (
        smtp_server(ca, "regsync", "pw", starttls=False) as (port, mails),
        pytest.raises(ChannelRejected, match="STARTTLS"),
    ):
        email(port, "pw").send(notice())
    assert mails == []


def test_siem_events_reach_a_tls_syslog_collector(ca: SandboxCA) -> None:
    collector = SyslogCollector(ca)
    lines = [json.dumps({"type": "audit_event", "id": 1}), json.dumps({"type": "alert_transition", "id": 2})]
    try:
        SyslogSink("127.0.0.1", collector.port, tls=True).write(lines)
        for _ in range(50):
            if len(collector.messages) == 2:
                break
            time.sleep(0.05)
    finally:
        collector.close()

    assert [json.loads(m.split(" - alert - ", 1)[1])["id"] for m in collector.messages] == [1, 2]
    assert all(m.startswith("<110>1 ") for m in collector.messages)
