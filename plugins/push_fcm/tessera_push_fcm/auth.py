"""OAuth2 access tokens for a Google service account (JWT bearer grant), cached until near expiry.

The key file is parsed once per distinct file (parsing an RSA key costs far more than signing).
Tokens are shared by every thread and replaced shortly before they expire, or when FCM answers 401.
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

from core.plugin_api import PermanentDeliveryError, TransientDeliveryError

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 3600  # Google refuses assertions valid for longer than an hour
TOKEN_MARGIN = 300  # seconds before expiry when a token is replaced, so none expires mid-send


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
        info: Any = json.loads(key_file)
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


class TokenCache:
    """Access tokens per (account, token endpoint), shared by all threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def get(self, http: httpx.Client, account: ServiceAccount, token_uri: str) -> str:
        """A valid access token, fetched only when none is held or it is about to expire."""
        key = (account.client_email, token_uri)
        with self._lock:  # held while fetching: a burst of threads makes one token call, not N
            held = self._tokens.get(key)
            if held is not None and held[1] - TOKEN_MARGIN > time.time():
                return held[0]
            token, expires_at = fetch_token(http, account, token_uri)
            self._tokens[key] = (token, expires_at)
            return token

    def drop(self, account: ServiceAccount, token_uri: str, token: str) -> None:
        """Forget ``token`` (FCM refused it), unless another thread already replaced it."""
        key = (account.client_email, token_uri)
        with self._lock:
            if self._tokens.get(key, ("", 0.0))[0] == token:
                del self._tokens[key]

    def clear(self) -> None:
        """Forget every token (tests)."""
        with self._lock:
            self._tokens.clear()


TOKENS = TokenCache()


def fetch_token(http: httpx.Client, account: ServiceAccount, token_uri: str) -> tuple[str, float]:
    """A new access token and its expiry time, or a delivery error saying why there is none."""
    now = int(time.time())
    claims = {
        "iss": account.client_email,
        "scope": SCOPE,
        "aud": token_uri,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
    }
    headers = {"kid": account.private_key_id} if account.private_key_id else None
    assertion = jwt.encode(claims, account.key, algorithm="RS256", headers=headers)
    try:
        answer = http.post(token_uri, data={"grant_type": JWT_BEARER, "assertion": assertion})
    except httpx.HTTPError as exc:
        raise TransientDeliveryError(
            f"Google's token endpoint cannot be reached ({exc}).", reason_code="unavailable"
        ) from exc
    try:
        body = answer.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    if answer.status_code == 200 and "access_token" in body:
        return str(body["access_token"]), now + float(body.get("expires_in", 3600))
    reason = body.get("error_description") or body.get("error") or answer.text[:200]
    if answer.status_code == 429 or answer.status_code >= 500:
        raise TransientDeliveryError(f"Google's token endpoint failed: {reason}", reason_code="unavailable")
    raise PermanentDeliveryError(
        f"Google refused the service account's credentials: {reason}", reason_code="credentials_refused"
    )
