"""The registry HTTP layer: a verifying httpx client and one GET-only request function with retries.

Every registry call goes through :meth:`RegistryHttp.get`: it takes a rate-limiter token as each attempt goes
on the wire (after connecting), sends a fresh ``Correlation-ID``, retries 429/5xx/timeouts/connection errors
with exponential backoff and full jitter, and logs one line per attempt: at INFO the endpoint template (org
numbers replaced by ``{orgnr}``), status, duration and correlation id; the real path only at DEBUG; never
headers or bodies. httpx's own INFO line per request (the full URL) is hidden for registry calls.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import random
import re
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import httpx

from config.settings import Settings
from worker.errors import InsecureURL, RegistryAuthError, RegistryError, RegistryTransientError
from worker.infra import metrics
from worker.infra.tls import client_ssl_context
from worker.registry.port import RateLimiter

log = logging.getLogger(__name__)

CORRELATION_HEADER = "Correlation-ID"
_USER_AGENT = "regsync/0.1 (+registry sync)"
#: A path segment that is an org number (digits, maybe with dashes or spaces as people type them).
_NUMBER_SEGMENT = re.compile(r"\d[\d\- ]*")
_IN_REGISTRY_CALL: ContextVar[bool] = ContextVar("regsync_in_registry_call", default=False)


def endpoint_template(url: httpx.URL) -> str:
    """``url``'s path and query with every value that may be an org number replaced by a placeholder.

    ``/api/companies/register/NO/924880155`` -> ``/api/companies/register/NO/{orgnr}``;
    ``/enheter?organisasjonsnummer=a,b&size=2`` -> ``/enheter?organisasjonsnummer={organisasjonsnummer}&size={size}``.
    """
    path = "/".join("{orgnr}" if _NUMBER_SEGMENT.fullmatch(part) else part for part in url.path.split("/"))
    names = dict.fromkeys(name for name, _ in url.params.multi_items())
    query = "&".join(f"{name}={{{name}}}" for name in names)
    return f"{path}?{query}" if query else path


class _HideRegistryUrls(logging.Filter):
    """httpx logs every request's full URL at INFO; a registry URL names org numbers, so drop those lines.

    RegistryHttp logs its own line for each attempt instead (endpoint template at INFO, the path at DEBUG).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_IN_REGISTRY_CALL.get() and record.levelno <= logging.INFO)


logging.getLogger("httpx").addFilter(_HideRegistryUrls())


@contextmanager
def _registry_call() -> Iterator[None]:
    token = _IN_REGISTRY_CALL.set(True)
    try:
        yield
    finally:
        _IN_REGISTRY_CALL.reset(token)


class _NotGetError(RegistryError):
    """regsync only reads from registries; a non-GET request was refused before it left the process."""

    code = "REGISTRY_NOT_GET"


def _refuse_unsafe(request: httpx.Request) -> None:
    # A client-level hook, so even a future code path that bypasses RegistryHttp.get cannot write or leak.
    if request.method != "GET":
        raise _NotGetError()
    if request.url.scheme != "https":
        raise InsecureURL()


def make_client(settings: Settings) -> httpx.Client:
    """An httpx client for one registry: verified TLS, the registry timeout, a pool sized for concurrency."""
    pool = settings.registry_concurrency
    return httpx.Client(
        verify=client_ssl_context(),
        timeout=settings.registry_timeout_s,
        limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool, keepalive_expiry=30.0),
        headers={"Accept": "application/json", "User-Agent": _USER_AGENT},
        follow_redirects=False,
        event_hooks={"request": [_refuse_unsafe]},
    )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How transient failures are retried. Delays are seconds."""

    max_retries: int = 4
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    #: A Retry-After longer than this is not slept through in-process: the chunk is retried later instead.
    max_retry_after_s: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(max_retries=settings.registry_max_retries)

    def backoff(self, attempt: int, jitter: float) -> float:
        """Full-jitter exponential backoff before retry number ``attempt`` (1-based); ``jitter`` in [0, 1)."""
        return jitter * min(self.backoff_cap_s, self.backoff_base_s * 2.0 ** (attempt - 1))


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent or bad."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass  # not seconds: an HTTP-date, then
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


@dataclass(frozen=True, slots=True)
class _Retry:
    """An attempt that failed transiently: why, and how long to wait before the next one."""

    reason: str
    delay: float
    retry_after: float | None = None


def _tls_refusal(exc: BaseException) -> str | None:
    """Why the TLS handshake was refused for good (an untrusted certificate, a server below TLS 1.2), or None.

    Neither changes between retries, so they are permanent: retrying only repeats the handshake.
    """
    seen: BaseException | None = exc
    while seen is not None:
        text = str(seen)
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
            return "TLS certificate verification failed; check SSL_CERT_FILE / REQUESTS_CA_BUNDLE"
        if any(mark in text for mark in _TLS_VERSION_MARKS):
            return "the server does not offer TLS 1.2 or newer, which regsync requires; ask the registry or proxy"
        seen = seen.__cause__ or seen.__context__
    return None


#: OpenSSL's words for a handshake that failed on the protocol version.
_TLS_VERSION_MARKS = ("UNSUPPORTED_PROTOCOL", "PROTOCOL_VERSION", "NO_PROTOCOLS_AVAILABLE")


class _SendGate:
    """Takes the rate-limit token when the request is about to go on the wire, not before connecting.

    httpcore's ``trace`` extension calls us right before the request headers are written, after any TCP and
    TLS set-up. Taking the token earlier lets a slow handshake bunch requests that were granted evenly: the
    registry counts arrivals. A transport that does not trace (a test's MockTransport) gets its token
    when it answers, so the limiter still sees every request.
    """

    def __init__(self, acquire: Callable[[], None]) -> None:
        self._acquire = acquire
        self._done = False

    def trace(self, event: str, info: Mapping[str, object]) -> None:
        if event.endswith(".send_request_headers.started") and not self._done:
            self._done = True
            self._acquire()

    def passed(self) -> None:
        if not self._done:
            self._done = True
            self._acquire()


class RegistryHttp:
    """GET-only, retrying, rate-limited requests to one registry, shared by a provider's threads."""

    def __init__(
        self,
        client: httpx.Client,
        limiter: RateLimiter,
        *,
        provider: str,
        policy: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.client = client
        self.provider = provider
        self._limiter = limiter
        self._policy = policy
        self._sleep = sleep
        self._jitter = jitter
        self._lock = threading.Lock()
        self._calls = 0

    @property
    def calls(self) -> int:
        """HTTP requests sent so far (their headers went on the wire), retries included.

        Counted as the rate-limit token is taken, exactly where the registry starts counting: a request refused
        before that (a TLS handshake refused, a closed run: worker.sync.run_closed) is not a call.
        """
        return self._calls

    @calls.setter
    def calls(self, value: int) -> None:
        with self._lock:
            self._calls = value

    def get(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """GET ``url``, retrying transient failures; returns any answer that is not 401/403/429/5xx.

        Raises:
            RegistryAuthError: the registry answered 401 or 403.
            RegistryTransientError: still failing after the policy's retries, or Retry-After too long.
            RegistryError: the registry's TLS certificate could not be verified (not retried).
        """
        last: _Retry | None = None
        for attempt in range(1, self._policy.max_retries + 2):
            outcome = self._attempt(url, params, headers, attempt)
            if isinstance(outcome, httpx.Response):
                return outcome
            last = outcome
            if attempt <= self._policy.max_retries:
                self._sleep(outcome.delay)
        assert last is not None
        attempts = self._policy.max_retries + 1
        raise RegistryTransientError(
            f"registry {self.provider} still failing after {attempts} attempts: {last.reason}",
            retry_after=last.retry_after,
        )

    def _attempt(
        self,
        url: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        attempt: int,
    ) -> httpx.Response | _Retry:
        target = httpx.URL(url).copy_merge_params(params or {})  # keeps a query the URL carries (a scroll id)
        correlation_id = str(uuid.uuid4())
        request_headers = {**(headers or {}), CORRELATION_HEADER: correlation_id}
        started = time.perf_counter()
        status: int | str = "error"
        send = _SendGate(self._acquire)
        try:
            with _registry_call():
                response = self.client.get(target, headers=request_headers, extensions={"trace": send.trace})
            send.passed()
            status = response.status_code
            return self._classify(response, attempt)
        except httpx.TimeoutException:
            status = "timeout"
            return _Retry("timeout", self._backoff(attempt))
        except httpx.TransportError as exc:
            status = "connection-error"
            refusal = _tls_refusal(exc)
            if refusal is not None:
                raise RegistryError(f"registry {self.provider}: {refusal}") from exc
            return _Retry(f"connection error ({type(exc).__name__})", self._backoff(attempt))
        finally:
            metrics.registry_request(self.provider, status)
            self._log(target, correlation_id, status, attempt, started)

    def _acquire(self) -> None:
        waiting = time.perf_counter()
        self._limiter.acquire()
        metrics.rate_limit_waited(self.provider, time.perf_counter() - waiting)
        with self._lock:
            self._calls += 1

    def _classify(self, response: httpx.Response, attempt: int) -> httpx.Response | _Retry:
        status = response.status_code
        if status in (401, 403):
            raise RegistryAuthError(
                f"registry token rejected by {self.provider} (HTTP {status}); "
                "set a valid token with `regsync secret set CONNECTION registry_token`"
            )
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return self._retry_for(status, retry_after, attempt)
        return response

    def _retry_for(self, status: int, retry_after: float | None, attempt: int) -> _Retry:
        if status == 429:
            # Tell every process sharing this token to back off, not just this thread.
            self._limiter.penalise(
                retry_after if retry_after is not None else self._policy.backoff(attempt, 1.0)
            )
        if retry_after is not None and retry_after > self._policy.max_retry_after_s:
            raise RegistryTransientError(
                f"registry {self.provider} asked us to wait {retry_after:.0f} s (HTTP {status})",
                retry_after=retry_after,
            )
        delay = retry_after if retry_after is not None else self._backoff(attempt)
        return _Retry(f"HTTP {status}", delay, retry_after)

    def _backoff(self, attempt: int) -> float:
        return self._policy.backoff(attempt, self._jitter())

    def _log(
        self, target: httpx.URL, correlation_id: str, status: int | str, attempt: int, started: float
    ) -> None:
        # Never headers (the token) nor a body; org numbers only at DEBUG.
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        endpoint = endpoint_template(target)
        log.info(
            "registry GET %s -> %s",
            endpoint,
            status,
            extra={
                "correlation_id": correlation_id,
                "provider": self.provider,
                "endpoint": endpoint,
                "status": status,
                "elapsed_ms": elapsed_ms,
                "attempt": attempt,
            },
        )
        if log.isEnabledFor(logging.DEBUG):
            path = target.raw_path.decode("ascii", "replace")
            log.debug(
                "registry GET %s -> %s",
                path,
                status,
                extra={"correlation_id": correlation_id, "url_path": path},
            )
