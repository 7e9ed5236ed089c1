"""CSRF protection for cookie-authenticated forms: a per-session token in every unsafe request.

Pages put the token in forms (``csrf_token`` field) and on ``<body hx-headers>`` so every HTMX
request sends ``X-CSRF-Token``. Bearer-token API calls carry no cookie and need none.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import HTTPException, Request

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token(request: Request) -> str:
    """This session's CSRF token, created on first use."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return str(token)


async def verify_csrf(request: Request) -> None:
    """Refuse an unsafe request whose CSRF token is missing or wrong (403)."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        form = await request.form()
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    expected = request.session.get("csrf")
    if not sent or not expected or not hmac.compare_digest(str(sent), str(expected)):
        raise HTTPException(
            403, "The form expired or did not come from Tessera (CSRF check failed). Reload the page."
        )
