"""The Google Wallet REST API over httpx, acting as the tenant's service account.

The service account's key is parsed once per distinct key file (parsing an RSA key costs far more
than signing with it). Its OAuth2 access token comes from the JWT bearer grant and is kept until
shortly before it expires, shared by every thread; a 401 drops it and the call is tried once more
with a new one. Errors come back as :class:`GoogleApiError` with Google's status and message, and
:func:`delivery_error` says what they mean for a send.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from core.plugin_api import DeliveryError, PermanentDeliveryError, TransientDeliveryError

SCOPE = "https://www.googleapis.com/auth/wallet_object.issuer"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
API_PATH = "/walletobjects/v1"
TOKEN_MARGIN = 120  # seconds before expiry when a token is replaced, so none expires mid-call
TIMEOUT = httpx.Timeout(20.0, connect=5.0)


class ServiceAccountInvalid(ValueError):
    """The key file is not a usable Google service-account key (said plainly)."""


@dataclass(frozen=True)
class ServiceAccount:
    """A Google service account: who it is and its parsed private key."""

    client_email: str
    private_key_id: str
    token_uri: str
    key: RSAPrivateKey


@lru_cache(maxsize=64)
def service_account(key_file: str) -> ServiceAccount:
    """The service account of a key file (JSON text), parsed once per distinct file."""
    try:
        info = json.loads(key_file)
    except ValueError:
        raise ServiceAccountInvalid("the service account key file is not valid JSON") from None
    if not isinstance(info, dict) or not {"client_email", "private_key"} <= info.keys():
        raise ServiceAccountInvalid(
            "this JSON is not a service account key (needs client_email and private_key)"
        )
    try:
        key = load_pem_private_key(str(info["private_key"]).encode(), password=None)
    except (ValueError, TypeError):
        raise ServiceAccountInvalid(
            "the private_key of the service account key file cannot be read"
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise ServiceAccountInvalid("the private_key of the service account is not an RSA key")
    return ServiceAccount(
        client_email=str(info["client_email"]),
        private_key_id=str(info.get("private_key_id", "")),
        token_uri=str(info.get("token_uri") or GOOGLE_TOKEN_URI),
        key=key,
    )


class GoogleApiError(Exception):
    """Google refused or failed a call: the HTTP status, Google's status name and its message."""

    def __init__(self, status_code: int, status: str, message: str, retry_after: float | None = None):
        super().__init__(f"{status_code} {status}: {message}")
        self.status_code, self.status, self.message, self.retry_after = (
            status_code,
            status,
            message,
            retry_after,
        )


def delivery_error(exc: GoogleApiError) -> DeliveryError:
    """What a Google error means for a send: a reason code, and whether trying again can help."""
    status, message = exc.status_code, exc.message[:500]
    if status == 429 or status >= 500:
        what = "rate_limited" if status == 429 else "unavailable"
        return TransientDeliveryError(
            f"Google Wallet: {message}", reason_code=what, retry_after=exc.retry_after
        )
    reasons = {
        400: ("invalid_pass", "Google Wallet refused the pass: {m}"),
        401: ("credentials_refused", "Google refused the service account's credentials: {m}"),
        403: ("permission_denied", "The service account may not act for this issuer (add it as a user "
                                   "in the Google Pay & Wallet Console): {m}"),
        404: ("not_found", "Google Wallet does not know it: {m}"),
        409: ("conflict", "Google Wallet: {m}"),
    }  # fmt: skip
    code, text = reasons.get(status, ("provider_error", "Google Wallet answered {s}: {m}"))
    return PermanentDeliveryError(text.format(m=message, s=status), reason_code=code)


class _Tokens:
    """Access tokens per (account, token endpoint), shared by all threads, renewed before expiry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def get(self, http: httpx.Client, account: ServiceAccount, token_uri: str) -> str:
        key = (account.client_email, token_uri)
        with self._lock:
            held = self._tokens.get(key)
            if held is not None and held[1] - TOKEN_MARGIN > time.time():
                return held[0]
            token, expires_at = _fetch_token(http, account, token_uri)
            self._tokens[key] = (token, expires_at)
            return token

    def drop(self, account: ServiceAccount, token_uri: str, token: str) -> None:
        with self._lock:
            key = (account.client_email, token_uri)
            if self._tokens.get(key, ("", 0.0))[0] == token:
                del self._tokens[key]


TOKENS = _Tokens()


def _fetch_token(http: httpx.Client, account: ServiceAccount, token_uri: str) -> tuple[str, float]:
    now = int(time.time())
    claims = {"iss": account.client_email, "scope": SCOPE, "aud": token_uri, "iat": now, "exp": now + 3600}
    headers = {"kid": account.private_key_id} if account.private_key_id else None
    assertion = jwt.encode(claims, account.key, algorithm="RS256", headers=headers)
    grant = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
    try:
        answer = http.post(token_uri, data=grant)
    except httpx.HTTPError as exc:
        raise GoogleApiError(503, "UNAVAILABLE", f"the token endpoint cannot be reached ({exc})") from exc
    body = _json(answer)
    if answer.status_code != 200 or "access_token" not in body:
        reason = body.get("error_description") or body.get("error") or answer.text[:200]
        status = 503 if answer.status_code >= 500 else 401
        raise GoogleApiError(status, str(body.get("error", "UNAUTHENTICATED")), f"no access token: {reason}")
    return str(body["access_token"]), now + float(body.get("expires_in", 3600))


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


@lru_cache(maxsize=16)
def _http(base_url: str) -> httpx.Client:
    """One pooled keep-alive client per API address."""
    return httpx.Client(base_url=base_url, timeout=TIMEOUT, limits=httpx.Limits(max_connections=32))


class WalletApi:
    """The Wallet API of one issuer, called as one service account."""

    def __init__(self, account: ServiceAccount, base_url: str, token_uri: str):
        self.account, self.token_uri = account, token_uri
        self.http = _http(base_url.rstrip("/"))

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One API call (``path`` under ``/walletobjects/v1``); its JSON answer, or GoogleApiError."""
        for attempt in (1, 2):
            token = TOKENS.get(self.http, self.account, self.token_uri)
            try:
                answer = self.http.request(
                    method, API_PATH + path, json=body, headers={"Authorization": f"Bearer {token}"}
                )
            except httpx.HTTPError as exc:
                raise GoogleApiError(503, "UNAVAILABLE", f"Google Wallet cannot be reached ({exc})") from exc
            if answer.status_code == 401 and attempt == 1:  # revoked or expired early: one new token
                TOKENS.drop(self.account, self.token_uri, token)
                continue
            if answer.status_code >= 400:
                raise _error(answer)
            return _json(answer)
        raise AssertionError("unreachable")

    def put(self, collection: str, resource: dict[str, Any], *, new: bool) -> dict[str, Any]:
        """Create or replace a class or object, whatever Google holds: safe to run again."""
        path, item = f"/{collection}", f"/{collection}/{resource['id']}"
        try:
            return self.call("POST", path, resource) if new else self.call("PUT", item, resource)
        except GoogleApiError as exc:
            if new and exc.status_code == 409:
                return self.call("PUT", item, resource)
            if not new and exc.status_code == 404:
                return self.call("POST", path, resource)
            raise

    def add_message(self, collection: str, resource_id: str, message: dict[str, Any]) -> dict[str, Any]:
        """Add a message to a class or object (a notification when its type says so)."""
        return self.call("POST", f"/{collection}/{resource_id}/addMessage", {"message": message})


def _error(answer: httpx.Response) -> GoogleApiError:
    error = _json(answer).get("error")
    retry = answer.headers.get("retry-after")
    retry_after = float(retry) if retry and retry.replace(".", "", 1).isdigit() else None
    if isinstance(error, dict):
        return GoogleApiError(
            answer.status_code, str(error.get("status", "")), str(error.get("message", "")), retry_after
        )
    return GoogleApiError(answer.status_code, "", answer.text[:300] or answer.reason_phrase, retry_after)
