"""A local fake of APNs as Apple Wallet uses it: its URL layout, auth and error shape.

The real call is ``POST /3/device/{push_token}`` with ``apns-topic`` and an empty ``{}`` body.
Errors are ``{"reason": "..."}`` and every response has an ``apns-id`` header. Real APNs checks
the Pass Type ID client certificate during TLS, which the core's mount cannot see, so the
sandbox asks for APNs's other credential, an ``authorization: bearer`` header, and answers like
APNs when it is missing: 403 ``MissingProviderToken``. This foundation version then answers
HTTP 501: the fake itself is not built yet.
"""

from __future__ import annotations

import re
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
DEVICE_PATH = re.compile(r"^3/device/[^/]+$")
NOT_BUILT = "The Tessera sandbox for Apple Wallet (wallet_apple) is not built yet: {call} is not faked."


def apns_error(status_code: int, reason: str) -> JSONResponse:
    """A response in APNs's error shape, with a fresh ``apns-id``."""
    headers = {"apns-id": str(uuid.uuid4()).upper()}
    return JSONResponse({"reason": reason}, status_code=status_code, headers=headers)


def has_bearer(request: Request) -> bool:
    """Whether the request carries ``authorization: bearer <something>``."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


def create_sandbox_app() -> FastAPI:
    """Build the fake APNs app the core mounts at ``/sandbox/{tenant}/wallet_apple``."""
    app = FastAPI(title="Tessera sandbox: APNs for Wallet", docs_url=None, redoc_url=None, openapi_url=None)

    @app.api_route("/{path:path}", methods=METHODS)
    async def any_call(request: Request, path: str) -> JSONResponse:
        """Check credentials, method and path as APNs does, then answer 501."""
        if not has_bearer(request):
            return apns_error(403, "MissingProviderToken")
        if request.method != "POST":
            return apns_error(405, "MethodNotAllowed")
        if not DEVICE_PATH.match(path):
            return apns_error(404, "BadPath")
        return apns_error(501, NOT_BUILT.format(call=f"{request.method} /{path}"))

    return app
