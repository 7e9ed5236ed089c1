"""The Google Wallet REST API over httpx, acting as the tenant's service account.

The service account and its OAuth2 access tokens come from :mod:`tessera_google_auth` (key parsed
once per key file; tokens of the JWT bearer grant kept until shortly before they expire, shared by
every thread); a 401 drops the token and the call is tried once more with a new one. Errors come
back as :class:`GoogleApiError` with Google's status and message, and
:func:`delivery_error` says what they mean for a send.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import httpx
from tessera_google_auth import ServiceAccount, TokenCache, TokenRefused

from core.plugin_api import DeliveryError, PermanentDeliveryError, TransientDeliveryError

SCOPE = "https://www.googleapis.com/auth/wallet_object.issuer"
API_PATH = "/walletobjects/v1"
TOKEN_MARGIN = 120  # seconds before expiry when a token is replaced, so none expires mid-call
TIMEOUT = httpx.Timeout(20.0, connect=5.0)


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


def _token_error(refused: TokenRefused) -> GoogleApiError:
    """No access token, as a Google error: 503 when the endpoint is down or away, else 401."""
    if refused.status_code is None:
        return GoogleApiError(503, "UNAVAILABLE", f"the token endpoint cannot be reached ({refused.reason})")
    status = 503 if refused.status_code >= 500 else 401
    return GoogleApiError(status, refused.error or "UNAUTHENTICATED", f"no access token: {refused.reason}")


TOKENS = TokenCache(SCOPE, margin=TOKEN_MARGIN, refusal=_token_error)


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
