"""The sandbox's OAuth 2.0 token endpoint: client credentials and JWT bearer, and the sessions it issued."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from typing import Any

import jwt

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ORG_ID = "00D000000000001EAA"
USER_ID = "005000000000001AAA"
#: Salesforce wants the assertion to expire within minutes; allow some clock skew over its three.
MAX_ASSERTION_LIFETIME_S = 300


class OAuthRejected(Exception):
    """A token request the endpoint refuses with 400 ``{"error", "error_description"}``."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class TokenIssuer:
    """Checks token requests and remembers which access tokens are currently valid (thread-safe)."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        jwt_public_key_pem: str | None = None,
        username: str | None = None,
    ) -> None:
        self._client_id = client_id
        self._client_secret = client_secret
        self._public_key = jwt_public_key_pem
        self._username = username
        self._lock = threading.Lock()
        self._valid: set[str] = set()
        self._revoked = False
        self.issued = 0

    def issue(self, form: dict[str, str], instance_url: str) -> dict[str, Any]:
        """Check one token request and answer Salesforce's token JSON, or raise OAuthRejected."""
        grant = form.get("grant_type", "")
        if grant == "client_credentials":
            self._check_client(form)
        elif grant == JWT_BEARER_GRANT:
            self._check_assertion(form.get("assertion", ""), audience=instance_url)
        else:
            raise OAuthRejected("unsupported_grant_type", "grant type not supported")
        with self._lock:
            if self._revoked:
                raise OAuthRejected("invalid_grant", "the connected app's access has been revoked")
            token = f"{ORG_ID[:15]}!{secrets.token_urlsafe(48)}"
            self._valid.add(token)
            self.issued += 1
        return self._answer(token, instance_url)

    def is_valid(self, token: str) -> bool:
        with self._lock:
            return token in self._valid

    def expire_all(self) -> None:
        """Every token issued so far stops working (the next API call gets INVALID_SESSION_ID)."""
        with self._lock:
            self._valid.clear()

    def revoke(self) -> None:
        """Revoke the connected app: current tokens die and no new ones are issued."""
        with self._lock:
            self._revoked = True
            self._valid.clear()

    def _check_client(self, form: dict[str, str]) -> None:
        same_id = hmac.compare_digest(form.get("client_id", ""), self._client_id)
        same_secret = hmac.compare_digest(form.get("client_secret", ""), self._client_secret)
        if not (same_id and same_secret):
            raise OAuthRejected("invalid_client", "invalid client credentials")

    def _check_assertion(self, assertion: str, *, audience: str) -> None:
        if self._public_key is None or self._username is None:
            raise OAuthRejected("invalid_grant", "JWT bearer flow is not enabled for this connected app")
        try:
            claims = jwt.decode(
                assertion,
                self._public_key,
                algorithms=["RS256"],
                audience=audience,
                issuer=self._client_id,
                options={"require": ["iss", "sub", "aud", "exp"]},
            )
        except jwt.InvalidIssuerError as exc:
            raise OAuthRejected("invalid_client", "client identifier invalid") from exc
        except jwt.ExpiredSignatureError as exc:
            raise OAuthRejected("invalid_grant", "expired authorization code") from exc
        except jwt.InvalidAudienceError as exc:
            raise OAuthRejected("invalid_grant", "audience is invalid") from exc
        except jwt.PyJWTError as exc:
            raise OAuthRejected("invalid_grant", "invalid assertion") from exc
        if claims["sub"] != self._username:
            raise OAuthRejected("invalid_grant", "user hasn't approved this consumer")
        if claims["exp"] > time.time() + MAX_ASSERTION_LIFETIME_S:
            raise OAuthRejected("invalid_grant", "invalid assertion: exp is too far in the future")

    def _answer(self, token: str, instance_url: str) -> dict[str, Any]:
        identity = f"{instance_url}/id/{ORG_ID}/{USER_ID}"
        issued_at = str(int(time.time() * 1000))
        digest = hmac.new(
            self._client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256
        ).digest()
        return {
            "access_token": token,
            "instance_url": instance_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": base64.b64encode(digest).decode(),
            "scope": "api",
        }
