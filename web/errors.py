"""Error answers: JSON for the API, a page for people, a redirect to sign in when needed."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from web.auth import LoginRequired
from web.templating import render

TITLES = {
    400: "Bad request",
    401: "Sign in needed",
    403: "Not allowed",
    404: "Not found",
    422: "Invalid input",
}


def _wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith(("/api/", "/sandbox/", "/webhooks/", "/x/", "/healthz")):
        return False
    return "text/html" in request.headers.get("accept", "") or request.headers.get("hx-request") == "true"


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on the app."""

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _exc: LoginRequired) -> Response:
        target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""), safe="")
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": f"/login?next={target}"})
        return RedirectResponse(f"/login?next={target}", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_html(request):
            context = {"status_code": exc.status_code, "title": TITLES.get(exc.status_code, "Error"),
                       "detail": exc.detail}  # fmt: skip
            return render(request, "error.html", context, status_code=exc.status_code)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_input(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"] if p != "body"), "message": err["msg"]}
            for err in exc.errors()
        ]
        return JSONResponse({"detail": "Invalid input.", "problems": problems}, status_code=422)
