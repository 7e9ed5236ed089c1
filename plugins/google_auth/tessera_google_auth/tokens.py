"""OAuth2 access tokens of service accounts (JWT bearer grant, RS256), cached until near expiry.

One :class:`TokenCache` per Google API (its scope). Tokens are shared by every thread, replaced
``margin`` seconds before they expire, and dropped when the API answers 401. A token endpoint that
gives none raises :class:`TokenRefused`, which the cache turns into the plugin's own error: by
default the core's delivery errors (:func:`delivery_error`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import jwt

from core.plugin_api import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from tessera_google_auth.account import ServiceAccount

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 3600  # Google refuses assertions valid for longer than an hour


class TokenRefused(Exception):
    """Google's token endpoint gave no access token.

    ``status_code`` is its HTTP status (None: it could not be reached), ``error`` OAuth's error
    code ("" when it said none) and ``reason`` its description, or why it could not be reached.
    """

    def __init__(self, status_code: int | None, error: str, reason: str) -> None:
        super().__init__(reason)
        self.status_code, self.error, self.reason = status_code, error, reason

    @property
    def transient(self) -> bool:
        """Whether asking again later can help: unreachable, rate limited or failing (5xx)."""
        return self.status_code is None or self.status_code == 429 or self.status_code >= 500


def delivery_error(refused: TokenRefused) -> DeliveryError:
    """What a refused token means for a send: retry later, or fix the credentials."""
    if refused.status_code is None:
        return TransientDeliveryError(
            f"Google's token endpoint cannot be reached ({refused.reason}).", reason_code="unavailable"
        )
    if refused.transient:
        return TransientDeliveryError(
            f"Google's token endpoint failed: {refused.reason}", reason_code="unavailable"
        )
    return PermanentDeliveryError(
        f"Google refused the service account's credentials: {refused.reason}",
        reason_code="credentials_refused",
    )


def assertion(account: ServiceAccount, scope: str, token_uri: str, now: int) -> str:
    """The signed JWT a service account presents to ``token_uri`` for a token of ``scope``."""
    claims = {
        "iss": account.client_email,
        "scope": scope,
        "aud": token_uri,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
    }
    headers = {"kid": account.private_key_id} if account.private_key_id else None
    return jwt.encode(claims, account.key, algorithm="RS256", headers=headers)


def fetch_token(http: httpx.Client, account: ServiceAccount, token_uri: str, scope: str) -> tuple[str, float]:
    """A new access token and its expiry time, or :class:`TokenRefused` saying why there is none."""
    now = int(time.time())
    grant = {"grant_type": JWT_BEARER, "assertion": assertion(account, scope, token_uri, now)}
    try:
        answer = http.post(token_uri, data=grant)
    except httpx.HTTPError as exc:
        raise TokenRefused(None, "", str(exc)) from exc
    try:
        body = answer.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    if answer.status_code == 200 and "access_token" in body:
        return str(body["access_token"]), now + float(body.get("expires_in", 3600))
    reason = body.get("error_description") or body.get("error") or answer.text[:200]
    raise TokenRefused(answer.status_code, str(body.get("error", "")), str(reason))


class TokenCache:
    """Access tokens of one scope per (account, token endpoint), shared by all threads.

    ``margin``: seconds before expiry when a token is replaced, so none expires mid-call.
    ``refusal``: the error raised when no token comes (default :func:`delivery_error`).
    """

    def __init__(
        self,
        scope: str,
        *,
        margin: float = 300.0,
        refusal: Callable[[TokenRefused], Exception] = delivery_error,
    ) -> None:
        self.scope, self.margin, self.refusal = scope, margin, refusal
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def get(self, http: httpx.Client, account: ServiceAccount, token_uri: str) -> str:
        """A valid access token, fetched only when none is held or it is about to expire."""
        key = (account.client_email, token_uri)
        with self._lock:  # held while fetching: a burst of threads makes one token call, not N
            held = self._tokens.get(key)
            if held is not None and held[1] - self.margin > time.time():
                return held[0]
            try:
                token, expires_at = fetch_token(http, account, token_uri, self.scope)
            except TokenRefused as refused:
                raise self.refusal(refused) from refused
            self._tokens[key] = (token, expires_at)
            return token

    def drop(self, account: ServiceAccount, token_uri: str, token: str) -> None:
        """Forget ``token`` (the API refused it), unless another thread already replaced it."""
        key = (account.client_email, token_uri)
        with self._lock:
            if self._tokens.get(key, ("", 0.0))[0] == token:
                del self._tokens[key]

    def clear(self) -> None:
        """Forget every token (tests)."""
        with self._lock:
            self._tokens.clear()
