"""Obtain a Salesforce access token (OAuth 2.0 client credentials or JWT bearer) from the token URL.

Error messages name the OAuth error code and Salesforce's description, never the client secret, the
private key, the assertion or the token.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import jwt
import requests

from worker.connections.spec import SalesforceSpec, require_https
from worker.errors import CrmAuthError, CrmError, CrmTransientError, InsecureURL
from worker.infra import process_state

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: Salesforce rejects assertions that expire more than a few minutes ahead; three is its documented value.
JWT_LIFETIME_S = 180
_DESCRIPTION_MAX = 200
_USER_ID = re.compile(r"/id/[A-Za-z0-9]{15,18}/(?P<user>005[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?)$")


class Login(NamedTuple):
    """A session: the access token, the instance to call, and the integration user (None if not said)."""

    access_token: str
    instance_url: str
    user_id: str | None = None


def fetch_token(
    spec: SalesforceSpec, secret: str, session: requests.Session, *, timeout_s: float = 30.0
) -> Login:
    """Authenticate against ``spec.token_url``; the session's token, instance URL and user.

    The user comes from the response's ``id`` (``.../id/<org id>/<user id>``, PROTOCOLS.md 3.1).

    Args:
        spec: The connection's Salesforce section (flow, client id, username, audience, URLs).
        secret: The client secret (client credentials) or the PEM private key (JWT bearer).
        session: The TLS-configured session to post with (see ``worker.crm.http.build_session``).
        timeout_s: Per-request timeout in seconds.

    Raises:
        InsecureURL: The token URL or the instance URL is not https.
        CrmAuthError: Salesforce rejected the credentials (invalid_grant, invalid_client, ...).
        CrmTransientError: The token endpoint was unreachable, timed out or answered 5xx / 429.
    """
    token_url = require_https(spec.token_url)
    form = _grant_form(spec, secret, token_url)
    response = _post(session, token_url, form, timeout_s)
    body = _json_body(response)
    if response.status_code != 200:
        raise _rejection(response.status_code, body, secret)
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise CrmError("Salesforce's token response has no access_token")
    return Login(token, _instance_url(spec, body), _user_id(body))


def _user_id(body: dict[str, Any]) -> str | None:
    match = _USER_ID.search(str(body.get("id") or ""))
    return match.group("user") if match else None


def _grant_form(spec: SalesforceSpec, secret: str, token_url: str) -> dict[str, str]:
    if spec.auth == "jwt_bearer":
        return {"grant_type": JWT_BEARER_GRANT, "assertion": _assertion(spec, secret, token_url)}
    return {"grant_type": "client_credentials", "client_id": spec.client_id, "client_secret": secret}


def _assertion(spec: SalesforceSpec, private_key_pem: str, token_url: str) -> str:
    """An RS256-signed JWT: iss = consumer key, sub = username, aud = audience or the token URL's origin."""
    parts = urlsplit(token_url)
    claims = {
        "iss": spec.client_id,
        "sub": spec.username,
        "aud": spec.audience or f"{parts.scheme}://{parts.netloc}",
        "exp": int(time.time()) + JWT_LIFETIME_S,
    }
    try:
        return jwt.encode(claims, private_key_pem, algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        # The library's message may quote the key material; say what is wrong instead.
        raise CrmAuthError("salesforce_private_key is not a usable PEM RSA private key") from exc


def _post(session: requests.Session, url: str, form: dict[str, str], timeout_s: float) -> requests.Response:
    try:
        return session.post(url, data=form, headers={"Accept": "application/json"}, timeout=timeout_s)
    except requests.exceptions.SSLError as exc:
        raise CrmError(
            "TLS verification of the Salesforce token endpoint failed; "
            "check SSL_CERT_FILE / REQUESTS_CA_BUNDLE"
        ) from exc
    except (requests.Timeout, requests.ConnectionError) as exc:
        raise CrmTransientError(f"Salesforce token endpoint unreachable ({type(exc).__name__})") from exc
    except requests.RequestException as exc:
        raise CrmError(f"Salesforce token request failed ({type(exc).__name__})") from exc


def _json_body(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    if response.status_code >= 500 or response.status_code == 429:
        raise CrmTransientError(f"Salesforce token endpoint answered HTTP {response.status_code}")
    raise CrmError(f"Salesforce token endpoint answered HTTP {response.status_code} without a JSON object")


def _rejection(status: int, body: dict[str, Any], secret: str) -> CrmError:
    if status >= 500 or status == 429:
        return CrmTransientError(f"Salesforce token endpoint answered HTTP {status}")
    code = str(body.get("error") or f"HTTP {status}")
    description = str(body.get("error_description") or "")[:_DESCRIPTION_MAX]
    if secret and secret in description:
        description = description.replace(secret, "••••")
    detail = f": {description}" if description else ""
    return CrmAuthError(f"Salesforce refused the token request ({code}){detail}")


def _instance_url(spec: SalesforceSpec, body: dict[str, Any]) -> str:
    returned = body.get("instance_url")
    url = spec.instance_url or (returned if isinstance(returned, str) else None)
    if not url:
        raise CrmError("Salesforce's token response has no instance_url and the connection sets none")
    if not url.lower().startswith("https://"):
        raise InsecureURL(
            f"Salesforce returned instance_url {url!r}; regsync only talks to Salesforce over https"
        )
    return url.rstrip("/")


#: How long one process reuses an access token. Salesforce's shortest session timeout is 15 minutes, so a
#: token this young is alive unless revoked; a revoked one costs one INVALID_SESSION_ID and a fresh login.
TOKEN_REUSE_S = 600.0


class TokenCache:
    """Access tokens shared by the clients of one process (a worker runs many chunks of one connection).

    Without it every chunk logs in: 5,000 logins for a run of 1,000,000 Accounts, past Salesforce's login
    rate limit for one user (3,600 an hour). Keys hold an HMAC of the secret, never the secret, so
    a rotated secret gets a login of its own and two tenants never share an entry. Memory only.
    """

    def __init__(self, max_age_s: float = TOKEN_REUSE_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, ...], tuple[float, str, str]] = {}
        self._users: dict[tuple[str, ...], str | None] = {}
        self._locks: dict[tuple[str, ...], threading.Lock] = {}

    def token(
        self,
        spec: SalesforceSpec,
        secret: str,
        fetch: Callable[[], Login | tuple[str, str]],
        *,
        failed: str | None = None,
    ) -> Login:
        """The cached session, or ``fetch()``'s when there is none, it is too
        old, or it is ``failed`` (Salesforce refused it). Logins for one key are serialised, so threads
        that see the same token refused log in once."""
        key = (
            spec.token_url,
            spec.instance_url or "",
            spec.audience or "",
            spec.auth,
            spec.client_id,
            spec.username or "",
            _digest(secret),
        )
        with self._lock_for(key):
            cached = self._tokens.get(key)
            if cached and cached[1] != failed and self._clock() - cached[0] < self._max_age_s:
                return Login(cached[1], cached[2], self._users.get(key))
            login = Login(*fetch())
            now = self._clock()
            self._forget_older_than(now - self._max_age_s)
            self._tokens[key] = (now, login.access_token, login.instance_url)
            self._users[key] = login.user_id
            return login

    def _forget_older_than(self, cutoff: float) -> None:
        """Drop expired tokens (a rotated secret's would otherwise stay in memory for good)."""
        for key in [k for k, (at, _token, _url) in list(self._tokens.items()) if at <= cutoff]:
            self._tokens.pop(key, None)
            self._users.pop(key, None)

    def _lock_for(self, key: tuple[str, ...]) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def clear(self) -> None:
        """Forget every token (tests; a process that must log in again)."""
        with self._lock:
            self._tokens.clear()
            self._users.clear()


#: Keys hold an HMAC of the secret under a key made per process: nothing in memory can be matched against
#: a digest of a known secret, and nothing outlives the process.
_KEY_SALT = os.urandom(32)


def _digest(secret: str) -> str:
    return hmac.new(_KEY_SALT, secret.encode(), hashlib.sha256).hexdigest()


TOKENS = TokenCache()
process_state.register(__name__, "TOKENS", TOKENS.clear)
