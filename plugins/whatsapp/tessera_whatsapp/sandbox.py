"""A local fake of Meta's WhatsApp Cloud API (Graph API): its URL layout, auth and error envelope.

The real endpoint is ``POST /{version}/{phone_number_id}/messages`` with ``Authorization: Bearer``.
This foundation version answers every call with Meta's error envelope and HTTP 501: the fake
itself is not built yet.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
BAD_TOKEN = "Invalid OAuth access token - Cannot parse access token"
NOT_BUILT = "(#100) The Tessera sandbox for WhatsApp is not built yet: {call} is not faked."


def meta_error(status_code: int, message: str, type_: str, code: int) -> JSONResponse:
    """A response in the Graph API's error envelope, with a fresh ``fbtrace_id``."""
    error: dict[str, Any] = {"message": message, "type": type_, "code": code}
    error["fbtrace_id"] = secrets.token_urlsafe(16)
    headers = None
    if status_code == 401:
        headers = {"WWW-Authenticate": f'OAuth "Facebook Platform" "invalid_token" "{message}"'}
    return JSONResponse({"error": error}, status_code=status_code, headers=headers)


def has_bearer(request: Request) -> bool:
    """Whether the request carries ``Authorization: Bearer <something>``."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


def create_sandbox_app() -> FastAPI:
    """Build the fake Graph API app the core mounts at ``/sandbox/{tenant}/whatsapp``."""
    app = FastAPI(
        title="Tessera sandbox: WhatsApp Cloud API", docs_url=None, redoc_url=None, openapi_url=None
    )

    @app.api_route("/{path:path}", methods=METHODS)
    async def any_call(request: Request, path: str) -> JSONResponse:
        """Refuse calls without a bearer token (code 190), then answer 501."""
        if not has_bearer(request):
            return meta_error(401, BAD_TOKEN, "OAuthException", 190)
        return meta_error(
            501, NOT_BUILT.format(call=f"{request.method} /{path}"), "GraphMethodException", 100
        )

    return app
