"""A local fake of FCM HTTP v1 and Google's OAuth token endpoint, faithful in shapes and errors.

- ``POST /token``: the JWT bearer grant; checks the assertion's RS256 signature against the trusted
  service accounts, its audience, scope and lifetime.
- ``POST /v1/projects/{project}/messages:send``: bearer auth, the ``SendMessageRequest`` schema of
  the discovery document (camelCase or snake_case names), FCM's rules (one target, text data, no
  reserved keys, 4 KB), dead tokens, and Google's error envelope with ``FcmError`` details.
- ``/_sandbox/...``: controls for tests and the demo (trust an account, mark tokens gone, script
  failures, add latency, expire tokens, read what was received, reset).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from tessera_google_auth.fake import (
    INVALID_CREDENTIAL,
    MISSING_CREDENTIAL,
    TOKEN_LIFETIME,
    accounts_router,
    bearer,
    token_response,
)

from core.plugin_api import NO_TELEMETRY
from tessera_push_fcm import testkeys
from tessera_push_fcm.schema import discovery, schema_problems

SCOPES = {
    "https://www.googleapis.com/auth/firebase.messaging",
    "https://www.googleapis.com/auth/cloud-platform",
}
MAX_PAYLOAD = 4096
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
VALID_TOKEN = re.compile(r"^[A-Za-z0-9_:.\-]{8,4096}$")
# What a scripted failure answers, per HTTP status: Google's status, FCM's errorCode, a message.
SCRIPTED = {
    400: ("INVALID_ARGUMENT", "INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "", INVALID_CREDENTIAL),
    403: ("PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"),
    404: ("NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded for quota metric 'Send requests'."),
    500: ("INTERNAL", "INTERNAL", "Internal error encountered."),
    503: ("UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."),
}


def google_error(
    code: int,
    status: str,
    message: str,
    *,
    error_code: str = "",
    details: list[dict[str, Any]] | None = None,
    retry_after: float | None = None,
) -> JSONResponse:
    """A response in Google's ``google.rpc.Status`` envelope, with an ``FcmError`` detail if given."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    listed = list(details or []) + ([{"@type": FCM_ERROR, "errorCode": error_code}] if error_code else [])
    if listed:
        error["details"] = listed
    headers = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'} if code == 401 else {}
    if retry_after is not None:
        headers["Retry-After"] = (
            str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
        )
    return JSONResponse({"error": error}, status_code=code, headers=headers)


def invalid(message: str, field_path: str = "message") -> JSONResponse:
    """400 INVALID_ARGUMENT with a ``BadRequest`` field violation, like FCM's parser answers."""
    violation = {"@type": BAD_REQUEST, "fieldViolations": [{"field": field_path, "description": message}]}
    return google_error(400, "INVALID_ARGUMENT", message, details=[violation])


@dataclass
class Failure:
    """An answer given instead of the real one to the next ``times`` send calls (to ``token`` only, if set)."""

    status: int
    times: int = 1
    retry_after: float | None = None
    error_code: str | None = None
    token: str | None = None


@dataclass
class FakeFcm:
    """Everything the fake remembers; guarded by ``lock`` (requests run on several threads)."""

    trusted: dict[str, str]
    lock: threading.Lock = field(default_factory=threading.Lock)
    tokens: dict[str, float] = field(default_factory=dict)
    tokens_issued: int = 0
    unregistered: set[str] = field(default_factory=set)
    failures: list[Failure] = field(default_factory=list)
    delay: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def issue_token(self) -> str:
        """A new access token valid for ``TOKEN_LIFETIME`` seconds."""
        token = "ya29." + secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = time.time() + TOKEN_LIFETIME
            self.tokens_issued += 1
        return token

    def token_valid(self, token: str) -> bool:
        """Whether ``token`` was issued here and has not expired."""
        with self.lock:
            return self.tokens.get(token, 0.0) > time.time()

    def take_failure(self, target: Any) -> Failure | None:
        """The scripted failure for a call to ``target`` (a registration token), if any, counted down."""
        with self.lock:
            failure = next((f for f in self.failures if f.token is None or f.token == target), None)
            if failure is None:
                return None
            failure.times -= 1
            if failure.times <= 0:
                self.failures.remove(failure)
            return failure

    def snapshot(self) -> dict[str, Any]:
        """What was received and sent, and the counters tests read."""
        with self.lock:
            return {
                "tokens_issued": self.tokens_issued,
                "unregistered": sorted(self.unregistered),
                "max_in_flight": self.max_in_flight,
                "received": list(self.received),
                "sent": list(self.sent),
                "pending_failures": len(self.failures),
                "delay": self.delay,
            }

    def reset(self) -> None:
        """Forget messages, dead tokens, failures, latency and counters (issued tokens stay valid)."""
        with self.lock:
            self.unregistered.clear()
            self.failures.clear()
            self.received.clear()
            self.sent.clear()
            self.delay, self.max_in_flight, self.tokens_issued = 0.0, 0, 0


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def to_camel(value: Any, schema_name: str) -> Any:
    """``value`` with snake_case field names turned into the schema's lowerCamelCase (maps left alone)."""
    schema = discovery()["schemas"].get(schema_name, {})
    properties = schema.get("properties", {})
    if not isinstance(value, dict) or not properties:
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = key if key in properties else _camel(key) if _camel(key) in properties else key
        ref = properties.get(name, {}).get("$ref")
        out[name] = to_camel(item, ref) if ref else item
    return out


def check_message(body: Any) -> JSONResponse | dict[str, Any]:
    """The request in camelCase, or the 400 FCM would answer for it."""
    if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
        return invalid("Request contains an invalid argument: message is required.")
    request: dict[str, Any] = to_camel(body, "SendMessageRequest")
    problems = schema_problems("SendMessageRequest", request)
    if problems:
        return invalid(
            f"Invalid JSON payload received. {problems[0]}", problems[0].split(":", 1)[0].lstrip("$.")
        )
    message = request["message"]
    targets = [name for name in ("token", "topic", "condition", "fid") if name in message]
    if len(targets) != 1:
        return invalid("Exactly one of token, topic, condition or fid must be set.", "message")
    for key in message.get("data") or {}:
        if key in {"from", "message_type", "notification"} or key.lower().startswith(("google", "gcm")):
            return invalid(f"Invalid data payload key: {key}", "message.data")
    if len(json.dumps(message, separators=(",", ":")).encode()) > MAX_PAYLOAD:
        return invalid("Message is too big", "message")
    return request


def _target(body: Any) -> Any:
    """The registration token a send request names, if it names one (before any validation)."""
    message = body.get("message") if isinstance(body, dict) else None
    return message.get("token") if isinstance(message, dict) else None


def create_sandbox_app(*, trusted_keys: dict[str, str] | None = None) -> FastAPI:
    """Build the fake FCM app the core mounts at ``/sandbox/{tenant}/push_fcm`` (state at ``app.state.fcm``).

    ``trusted_keys`` maps service accounts (``client_email``) to public keys (PEM); by default the
    test service account of :mod:`tessera_push_fcm.testkeys`.
    """
    if trusted_keys is None:
        trusted_keys = {testkeys.CLIENT_EMAIL: testkeys.public_key_pem()}
    app = FastAPI(title="Tessera sandbox: FCM HTTP v1", docs_url=None, redoc_url=None, openapi_url=None,
                  telemetry=NO_TELEMETRY)  # fmt: skip
    state = app.state.fcm = FakeFcm(trusted=dict(trusted_keys))

    @app.post("/token")
    async def token(request: Request) -> Response:
        """Google's OAuth token endpoint: an access token for a signed service-account assertion."""
        return await token_response(
            request, state.trusted, scopes=SCOPES, plugin_key="push_fcm", issue=lambda _: state.issue_token()
        )

    async def send(request: Request) -> Response:
        """FCM's send method, with its checks in FCM's order."""
        project = request.path_params["project"]
        with state.lock:
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            if state.delay:
                await asyncio.sleep(state.delay)
            return await _send(request, project)
        finally:
            with state.lock:
                state.in_flight -= 1

    async def _send(request: Request, project: str) -> Response:
        credential = bearer(request)
        if credential is None:
            return google_error(401, "UNAUTHENTICATED", MISSING_CREDENTIAL)
        if not state.token_valid(credential):
            return google_error(401, "UNAUTHENTICATED", INVALID_CREDENTIAL)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return invalid("Invalid JSON payload received.", "")
        with state.lock:
            state.received.append({"project": project, "body": body})
        failure = state.take_failure(_target(body))
        if failure is not None:
            status, code, text = SCRIPTED.get(failure.status, ("UNKNOWN", "", "Scripted failure."))
            code = failure.error_code if failure.error_code is not None else code
            return google_error(
                failure.status, status, text, error_code=code, retry_after=failure.retry_after
            )
        checked = check_message(body)
        if isinstance(checked, JSONResponse):
            return checked
        message = checked["message"]
        target = message.get("token")
        if target is not None and not VALID_TOKEN.match(str(target)):
            return google_error(
                400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token",
                error_code="INVALID_ARGUMENT",
            )  # fmt: skip
        if target in state.unregistered:
            return google_error(
                404, "NOT_FOUND", "Requested entity was not found.", error_code="UNREGISTERED"
            )
        if checked.get("validateOnly"):
            return JSONResponse({"name": f"projects/{project}/messages/fake_message_id"})
        name = f"projects/{project}/messages/0:{next(state.counter)}%{secrets.token_hex(8)}"
        with state.lock:
            state.sent.append({"name": name, "message": message})
        return JSONResponse({"name": name})

    # A plain Starlette route: it is called for every push, and needs none of FastAPI's parameter solving.
    app.router.add_route("/v1/projects/{project}/messages:send", send, methods=["POST"])
    app.include_router(accounts_router(state.trusted))

    @app.post("/_sandbox/unregister")
    async def unregister(body: TokensIn) -> JSONResponse:
        """Mark registration tokens as gone (app uninstalled): sends to them answer UNREGISTERED."""
        with state.lock:
            state.unregistered.update(body.tokens)
        return JSONResponse({"unregistered": sorted(state.unregistered)})

    @app.post("/_sandbox/fail", status_code=201)
    async def fail(body: FailureIn) -> JSONResponse:
        """Answer the next ``times`` send calls (to ``token`` only, if given) with this status in Google's envelope."""
        with state.lock:
            state.failures.append(Failure(**body.model_dump()))
        return JSONResponse(body.model_dump(), status_code=201)

    @app.post("/_sandbox/delay")
    async def delay(body: DelayIn) -> JSONResponse:
        """Add this latency to every send call from now on (0 to stop)."""
        with state.lock:
            state.delay = body.seconds
        return JSONResponse({"seconds": body.seconds})

    @app.post("/_sandbox/expire_tokens")
    async def expire_tokens() -> JSONResponse:
        """Make every issued access token expired (as if an hour passed)."""
        with state.lock:
            count, state.tokens = len(state.tokens), {}
        return JSONResponse({"expired": count})

    @app.get("/_sandbox/state")
    async def read_state() -> JSONResponse:
        """What the fake received and sent, and its counters."""
        return JSONResponse(state.snapshot())

    @app.post("/_sandbox/reset")
    async def reset() -> Response:
        """Forget messages, dead tokens, failures, latency and counters."""
        state.reset()
        return Response(status_code=204)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def elsewhere(request: Request, path: str) -> JSONResponse:
        """Anything else: not a URL FCM (or this fake) serves."""
        return google_error(404, "NOT_FOUND", f"The sandbox for FCM does not serve {request.method} /{path}.")

    return app


class TokensIn(BaseModel):
    """Registration tokens."""

    tokens: list[str]


class FailureIn(BaseModel):
    """A scripted failure: HTTP status, how many calls, Retry-After, FCM errorCode ("" for none), to which token."""

    status: int = Field(ge=400, le=599)
    times: int = Field(default=1, ge=1)
    retry_after: float | None = Field(default=None, ge=0)
    error_code: str | None = None
    token: str | None = Field(
        default=None, description="Only calls to this registration token; any if unset."
    )


class DelayIn(BaseModel):
    """Seconds of latency per send call."""

    seconds: float = Field(ge=0, le=30)
