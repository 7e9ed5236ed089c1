"""A local fake of the Google Wallet API: its URL layout, auth check and error envelope.

The real API lives under ``/walletobjects/v1/`` (``loyaltyObject``, ``genericClass``, ``jwt``...);
the OAuth token endpoint (the service account's ``token_uri``) is faked at ``POST /token``. This
foundation version answers every call with Google's error envelope and HTTP 501: the fake itself
is not built yet.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
TOKEN_PATH = "token"
MISSING_CREDENTIAL = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
NOT_BUILT = "The Tessera sandbox for Google Wallet (wallet_google) is not built yet: {call} is not faked."


def google_error(code: int, status: str, message: str) -> JSONResponse:
    """A response in Google's ``google.rpc.Status`` JSON envelope."""
    headers = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'} if code == 401 else None
    body = {"error": {"code": code, "message": message, "status": status}}
    return JSONResponse(body, status_code=code, headers=headers)


def has_bearer(request: Request) -> bool:
    """Whether the request carries ``Authorization: Bearer <something>``."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


def create_sandbox_app() -> FastAPI:
    """Build the fake Google Wallet app the core mounts at ``/sandbox/{tenant}/wallet_google``."""
    app = FastAPI(title="Tessera sandbox: Google Wallet API", docs_url=None, redoc_url=None, openapi_url=None)

    @app.api_route("/{path:path}", methods=METHODS)
    async def any_call(request: Request, path: str) -> JSONResponse:
        """Refuse calls without a bearer token (except the token endpoint), then answer 501."""
        call = f"{request.method} /{path}"
        if path == TOKEN_PATH:
            body = {"error": "unimplemented", "error_description": NOT_BUILT.format(call=call)}
            return JSONResponse(body, status_code=501)
        if not has_bearer(request):
            return google_error(401, "UNAUTHENTICATED", MISSING_CREDENTIAL)
        return google_error(501, "UNIMPLEMENTED", NOT_BUILT.format(call=call))

    return app
