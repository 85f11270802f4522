"""Notification channels: signed webhooks and SMTP mail with STARTTLS, built from a connection's settings.

A channel raises :class:`ChannelError` when a later attempt may succeed (timeout, 5xx, 429) and
:class:`ChannelRejected` when it will not (4xx, authentication refused, a missing signing key): the evaluator
then opens a ``channel_failing`` alert instead of going quiet. Messages name the channel, never its URL
(webhook URLs often embed a token) or a server's answer.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol

import httpx
from sqlalchemy.orm import Session

from config.settings import get_settings
from worker.alerts.config import AlertsSpec, EmailChannelSpec, WebhookChannelSpec
from worker.alerts.payload import Notice
from worker.alerts.signing import EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from worker.errors import ChannelError, ChannelRejected, SecretMissing
from worker.infra.tls import client_ssl_context

#: HTTP statuses worth another attempt; every other non-2xx answer is permanent.
RETRYABLE_STATUS = frozenset({408, 425, 429})


class Channel(Protocol):
    """Delivers a notice, or raises ChannelError (transient) / ChannelRejected (permanent)."""

    name: str

    def send(self, notice: Notice) -> None: ...


class BrokenChannel:
    """A channel that cannot work as configured (e.g. its secret is missing): every send is rejected."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem

    def send(self, notice: Notice) -> None:
        raise ChannelRejected(self.problem)


def _untrusted(exc: BaseException) -> bool:
    """True when a certificate check failed somewhere in the exception's chain (a permanent problem)."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class WebhookChannel:
    """POSTs the notice's JSON, signed, retrying transient failures with exponential backoff."""

    def __init__(
        self,
        name: str,
        spec: WebhookChannelSpec,
        signing_key: str,
        *,
        attempts: int = 3,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.spec = spec
        self._key = signing_key
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"WebhookChannel({self.name!r})"

    def _headers(self, notice: Notice, body: bytes) -> dict[str, str]:
        stamp = int(time.time())
        return {
            "Content-Type": "application/json",
            "User-Agent": "regsync-alerts",
            EVENT_HEADER: notice.event_id,
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign(self._key, stamp, body),
        }

    def _attempt(self, client: httpx.Client, notice: Notice, body: bytes) -> str | None:
        """None when delivered; the reason when worth another attempt. Raises ChannelRejected."""
        try:
            response = client.post(self.spec.url, content=body, headers=self._headers(notice, body))
        except httpx.TransportError as exc:
            if _untrusted(exc):
                raise ChannelRejected(
                    f"webhook {self.name}: the receiver's TLS certificate is not trusted; check SSL_CERT_FILE"
                ) from None
            return type(exc).__name__
        if 200 <= response.status_code < 300:
            return None
        if response.status_code in RETRYABLE_STATUS or response.status_code >= 500:
            return f"HTTP {response.status_code}"
        raise ChannelRejected(
            f"webhook {self.name} refused the notice with HTTP {response.status_code}; "
            "check its URL and that the receiver has the current webhook_signing_key"
        )

    def send(self, notice: Notice) -> None:
        body = notice.body()
        reason = "no attempt"
        with httpx.Client(
            verify=client_ssl_context(), trust_env=False, timeout=self.spec.timeout_s, follow_redirects=False
        ) as client:
            for attempt in range(self.attempts):
                if attempt:
                    self._sleep(self.backoff_s * 2 ** (attempt - 1))
                outcome = self._attempt(client, notice, body)
                if outcome is None:
                    return
                reason = outcome
        raise ChannelError(
            f"webhook {self.name} did not take the notice after {self.attempts} attempts ({reason})"
        )


class EmailChannel:
    """Sends the notice as plain-text mail; refuses servers that do not offer STARTTLS."""

    def __init__(self, name: str, spec: EmailChannelSpec, password: str | None) -> None:
        self.name = name
        self.spec = spec
        self._password = password

    def __repr__(self) -> str:
        return f"EmailChannel({self.name!r})"

    def _message(self, notice: Notice) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = notice.subject
        message["From"] = self.spec.sender
        message["To"] = ", ".join(self.spec.to)
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=self.spec.sender.rsplit("@", 1)[-1])
        message[EVENT_HEADER] = notice.event_id
        message.set_content(notice.text)
        return message

    def _deliver(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.spec.host, self.spec.port, timeout=self.spec.timeout_s) as smtp:
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise ChannelRejected(
                    f"mail server of channel {self.name} does not offer STARTTLS; regsync does not send "
                    "alerts in plain text: use a server (or port) with STARTTLS"
                )
            smtp.starttls(context=client_ssl_context())
            smtp.ehlo()
            if self.spec.username:
                smtp.login(self.spec.username, self._password or "")
            smtp.send_message(message)

    def send(self, notice: Notice) -> None:
        try:
            self._deliver(self._message(notice))
        except ChannelRejected:
            raise
        except smtplib.SMTPAuthenticationError:
            raise ChannelRejected(
                f"mail server of channel {self.name} refused the login; set smtp_password with `regsync secret set`"
            ) from None
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused):
            raise ChannelRejected(
                f"mail server of channel {self.name} refused the sender or recipients"
            ) from None
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code >= 500:
                raise ChannelRejected(
                    f"mail server of channel {self.name} answered {exc.smtp_code}"
                ) from None
            raise ChannelError(f"mail server of channel {self.name} answered {exc.smtp_code}") from None
        except ssl.SSLCertVerificationError:
            raise ChannelRejected(
                f"mail server certificate of channel {self.name} is not trusted; check SSL_CERT_FILE"
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelError(
                f"mail server of channel {self.name} unreachable ({type(exc).__name__})"
            ) from None


ChannelFactory = Callable[[Session, int, AlertsSpec], dict[str, Channel]]


def _secret(session: Session, connection_id: int, name: str) -> str | None:
    from worker.connections.secrets import get_secret

    try:
        return get_secret(session, connection_id, name)
    except SecretMissing:
        return None


def build_channels(session: Session, connection_id: int, settings: AlertsSpec) -> dict[str, Channel]:
    """The channels of a connection, with their secrets decrypted (a channel missing one is a BrokenChannel)."""
    how = "with `regsync secret set CONNECTION {name}`"
    return channels_with(settings, lambda name: _secret(session, connection_id, name), how)


def channels_with(settings: AlertsSpec, secret: Callable[[str], str | None], how: str) -> dict[str, Channel]:
    """The channels of ``settings``, with secrets from ``secret``; ``how`` says how to set a missing one."""
    app = get_settings()
    channels: dict[str, Channel] = {}
    for name, spec in settings.channels.items():
        if isinstance(spec, WebhookChannelSpec):
            key = secret("webhook_signing_key")
            channels[name] = (
                WebhookChannel(
                    name, spec, key, attempts=app.alert_send_attempts, backoff_s=app.alert_backoff_s
                )
                if key
                else BrokenChannel(
                    name,
                    f"webhook {name} cannot sign notices: set webhook_signing_key "
                    + how.format(name="webhook_signing_key"),
                )
            )
        else:
            password = secret("smtp_password") if spec.username else None
            channels[name] = (
                BrokenChannel(name, f"channel {name} logs in as {spec.username} but smtp_password is not set")
                if spec.username and password is None
                else EmailChannel(name, spec, password)
            )
    return channels
