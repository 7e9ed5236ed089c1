"""'Save to Google Wallet' links: a JWT signed RS256 by the service account, carrying the pass.

Claims as Google documents them: ``iss`` the service account, ``aud`` "google", ``typ``
"savetowallet", ``iat``, ``origins`` (the sites allowed to show the button) and ``payload`` with
the class and the object (schema ``Resources``), so a pass saves even before its object reached
Google through the API. The key is the one parsed once per key file (:mod:`tessera_google_auth`).
"""

from __future__ import annotations

import time
from typing import Any

import jwt
from tessera_google_auth import ServiceAccount

from tessera_wallet_google.objects import PAYLOAD_KEYS, GooglePass

GOOGLE_SAVE_BASE = "https://pay.google.com"
SAVE_PATH = "/gp/v/save/"


def save_payload(google_pass: GooglePass) -> dict[str, Any]:
    """The ``payload`` claim for one pass: its class and its object."""
    classes, objects = PAYLOAD_KEYS[google_pass.kind]
    return {classes: [google_pass.class_body], objects: [google_pass.object_body]}


def save_token(
    account: ServiceAccount, payload: dict[str, Any], origins: list[str], now: float | None = None
) -> str:
    """The signed save JWT."""
    claims = {
        "iss": account.client_email,
        "aud": "google",
        "typ": "savetowallet",
        "iat": int(now if now is not None else time.time()),
        "origins": origins,
        "payload": payload,
    }
    headers = {"kid": account.private_key_id} if account.private_key_id else None
    return jwt.encode(claims, account.key, algorithm="RS256", headers=headers)


def save_url(base: str, token: str) -> str:
    """The link that opens Google's save page for this token."""
    return f"{base.rstrip('/')}{SAVE_PATH}{token}"
