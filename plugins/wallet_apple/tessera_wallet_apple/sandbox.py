"""A local fake of APNs as Apple Wallet uses it: its URL layout, checks, error shape and state.

The real call is ``POST /3/device/{push_token}`` with ``apns-topic`` and the JSON body ``{}``;
success is 200 with an empty body, errors are ``{"reason": "..."}`` (410 adds ``timestamp``) and
every response has an ``apns-id`` header. Checks run in APNs's order: credential, method, path,
token, topic, size, payload, then the device's state.

Two ways to run it, chosen with ``create_sandbox_app(tls_client_auth=...)``:

- mounted by the core at ``/sandbox/{tenant}/wallet_apple`` (the default): the core's HTTP server
  cannot see TLS client certificates, so the app asks for an ``authorization: bearer ...`` header
  and answers 403 ``MissingProviderToken`` without one. Its state is kept per bearer value, so
  tenants sharing the one mounted app do not see each other's devices.
- behind a TLS server that requires and verified a client certificate
  (:mod:`tessera_wallet_apple.fake_apns`): the TLS layer did the authentication, no header is asked.

Under ``/_sandbox/`` (a path APNs never uses) a test or the demo can act as the devices: mark a token
unregistered (the app was removed), script failures (429, 503, 403...), read the pushes received.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from core.plugin_api import NO_TELEMETRY
from tessera_wallet_apple.apns import DEVICE_TOKEN

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
DEVICE_PREFIX = "3/device/"
MAX_PAYLOAD = 4096  # APNs's limit for a regular remote notification, in bytes
KEPT_PUSHES = 100_000  # enough for a benchmark; bounded so a long demo does not grow without end
TLS_CREDENTIAL = ""  # the one state of an app whose clients the TLS layer authenticated


@dataclass(frozen=True)
class ReceivedPush:
    """One push that reached the fake with a credential, and what the fake answered."""

    token: str
    topic: str | None
    body: str
    http_version: str
    peer: str  # the client's address and port: one value for pushes sharing a connection
    received_at: str
    status: int
    reason: str | None
    apns_id: str


@dataclass
class ScriptedFailure:
    """An answer the fake gives instead of 200, ``times`` times, to one token or to any."""

    status: int
    reason: str
    token: str | None = None
    retry_after: int | None = None
    times: int = 1


@dataclass
class FakeDevices:
    """What the fake knows for one credential: removed tokens, scripted failures, pushes received."""

    unregistered: dict[str, int] = field(default_factory=dict)
    failures: list[ScriptedFailure] = field(default_factory=list)
    received: deque[ReceivedPush] = field(default_factory=lambda: deque(maxlen=KEPT_PUSHES))
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def mark_unregistered(self, token: str) -> int:
        """Treat the token as removed from its device (410 from now on); when, in ms since the epoch."""
        with self.lock:
            return self.unregistered.setdefault(token.lower(), int(time.time() * 1000))

    def fail_next(self, failure: ScriptedFailure) -> None:
        """Answer the next matching pushes with this failure instead of 200."""
        with self.lock:
            self.failures.append(failure)

    def pushes(self) -> list[ReceivedPush]:
        """The pushes received so far, oldest first."""
        with self.lock:
            return list(self.received)

    def reset(self) -> None:
        """Forget every token, failure and push."""
        with self.lock:
            self.unregistered.clear()
            self.failures.clear()
            self.received.clear()

    def removed_at(self, token: str) -> int | None:
        """When the token was marked unregistered (ms since the epoch), or None."""
        with self.lock:
            return self.unregistered.get(token.lower())

    def take_failure(self, token: str) -> ScriptedFailure | None:
        """Consume the first scripted failure that applies to this token, if any."""
        with self.lock:
            for failure in self.failures:
                if failure.token is None or failure.token.lower() == token:
                    failure.times -= 1
                    if failure.times <= 0:
                        self.failures.remove(failure)
                    return failure
        return None

    def record(self, push: ReceivedPush) -> None:
        """Keep a push received (the oldest are dropped past ``KEPT_PUSHES``)."""
        with self.lock:
            self.received.append(push)


class SandboxState:
    """The fake's state for each credential that called it, kept on the app (``app.state.apns``)."""

    def __init__(self) -> None:
        self._devices: dict[str, FakeDevices] = {}
        self._lock = threading.Lock()

    def devices(self, credential: str = TLS_CREDENTIAL) -> FakeDevices:
        """The state behind one bearer value (or the TLS-authenticated state, by default)."""
        with self._lock:
            return self._devices.setdefault(credential, FakeDevices())


class FailureIn(BaseModel):
    """The control endpoint's body to script a failure."""

    model_config = ConfigDict(extra="forbid")

    status: int = Field(ge=400, le=599, description="e.g. 429, 503, 403")
    reason: str = Field(min_length=1, description="APNs's reason, e.g. TooManyRequests")
    token: str | None = Field(default=None, description="Only this token; any token when absent.")
    retry_after: int | None = Field(default=None, ge=0, description="Sent as a Retry-After header.")
    times: int = Field(default=1, ge=1)


def apns_error(
    status_code: int, reason: str, apns_id: str | None = None, extra: dict[str, Any] | None = None
) -> JSONResponse:
    """A response in APNs's error shape, with an ``apns-id`` (a fresh one unless given)."""
    headers = {"apns-id": apns_id or new_apns_id()}
    return JSONResponse({"reason": reason, **(extra or {})}, status_code=status_code, headers=headers)


def new_apns_id() -> str:
    """An id in APNs's form: an upper-case UUID."""
    return str(uuid.uuid4()).upper()


def bearer(request: Request) -> str | None:
    """The value of ``authorization: bearer <value>``, if the request carries one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def create_sandbox_app(*, tls_client_auth: bool = False) -> FastAPI:
    """Build the fake APNs app; ``tls_client_auth`` when a TLS server in front verified the client.

    Without it (how the core mounts the app at ``/sandbox/{tenant}/wallet_apple``) every call,
    the control endpoints included, needs an ``authorization: bearer`` header, and each bearer
    value has its own state. With it, the caller must serve the app only behind TLS that requires a
    client certificate: the app itself cannot check one and accepts every call.
    """
    app = FastAPI(title="Tessera sandbox: APNs for Wallet", docs_url=None, redoc_url=None, openapi_url=None,
                  telemetry=NO_TELEMETRY)  # fmt: skip
    state = app.state.apns = SandboxState()

    def devices_for(request: Request) -> FakeDevices | None:
        """The caller's state, or None when it brings no credential."""
        if tls_client_auth:
            return state.devices()
        credential = bearer(request)
        return None if credential is None else state.devices(credential)

    @app.post("/_sandbox/unregistered/{token}")
    async def unregister(request: Request, token: str) -> Response:
        """Act as the device removing the pass: its token answers 410 Unregistered from now on."""
        devices = devices_for(request)
        if devices is None:
            return apns_error(403, "MissingProviderToken")
        if not DEVICE_TOKEN.match(token):
            return apns_error(400, "BadDeviceToken")
        return JSONResponse({"token": token.lower(), "timestamp": devices.mark_unregistered(token)})

    @app.post("/_sandbox/failures", status_code=201)
    async def script_failure(request: Request, failure: FailureIn) -> Response:
        """Answer the next matching pushes with this status and reason instead of 200."""
        devices = devices_for(request)
        if devices is None:
            return apns_error(403, "MissingProviderToken")
        devices.fail_next(ScriptedFailure(**failure.model_dump()))
        return JSONResponse(failure.model_dump(), status_code=201)

    @app.get("/_sandbox/pushes")
    async def pushes(request: Request) -> Response:
        """The pushes this credential sent, oldest first, with the fake's answers."""
        devices = devices_for(request)
        if devices is None:
            return apns_error(403, "MissingProviderToken")
        return JSONResponse({"pushes": [asdict(push) for push in devices.pushes()]})

    @app.post("/_sandbox/reset")
    async def reset(request: Request) -> Response:
        """Forget this credential's tokens, failures and pushes."""
        devices = devices_for(request)
        if devices is None:
            return apns_error(403, "MissingProviderToken")
        devices.reset()
        return Response(status_code=204)

    @app.api_route("/{path:path}", methods=METHODS)
    async def push(request: Request, path: str) -> Response:
        """Answer like APNs: check the call, then the device's state and any scripted failure."""
        devices = devices_for(request)
        if devices is None:
            return apns_error(403, "MissingProviderToken")
        if request.method != "POST":
            return apns_error(405, "MethodNotAllowed")
        if not path.startswith(DEVICE_PREFIX) or "/" in path[len(DEVICE_PREFIX) :]:
            return apns_error(404, "BadPath")
        body = await request.body()
        token = path[len(DEVICE_PREFIX) :]
        topic = request.headers.get("apns-topic")
        sent_id = request.headers.get("apns-id")
        apns_id = new_apns_id() if sent_id is None else sent_id
        status, reason, extra, headers = answer(devices, token, topic, sent_id, body)
        devices.record(
            ReceivedPush(
                token=token.lower(), topic=topic, body=body.decode("utf-8", errors="replace"),
                http_version=str(request.scope.get("http_version", "")),
                peer=f"{request.client.host}:{request.client.port}" if request.client else "",
                received_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
                status=status, reason=reason, apns_id=apns_id,
            )
        )  # fmt: skip
        if reason is None:
            return Response(status_code=200, headers={"apns-id": apns_id, **headers})
        response = apns_error(status, reason, apns_id, extra)
        response.headers.update(headers)
        return response

    return app


def answer(
    devices: FakeDevices, token: str, topic: str | None, sent_id: str | None, body: bytes
) -> tuple[int, str | None, dict[str, Any], dict[str, str]]:
    """APNs's verdict on a push: status, reason (None for 200), extra body fields, extra headers."""
    if not DEVICE_TOKEN.match(token):
        return 400, "BadDeviceToken", {}, {}
    if sent_id is not None and not is_uuid(sent_id):
        return 400, "BadMessageId", {}, {}
    if not topic:
        return 400, "MissingTopic", {}, {}
    if len(body) > MAX_PAYLOAD:
        return 413, "PayloadTooLarge", {}, {}
    if not body.strip():
        return 400, "PayloadEmpty", {}, {}
    try:
        payload = json.loads(body)
    except ValueError:
        return 400, "BadPayload", {}, {}
    if not isinstance(payload, dict) or not isinstance(payload.get("aps", {}), dict):
        return 400, "BadPayload", {}, {}
    removed_at = devices.removed_at(token)
    if removed_at is not None:
        return 410, "Unregistered", {"timestamp": removed_at}, {}
    failure = devices.take_failure(token.lower())
    if failure is not None:
        headers = {} if failure.retry_after is None else {"retry-after": str(failure.retry_after)}
        return failure.status, failure.reason, {}, headers
    return 200, None, {}, {}


def is_uuid(value: str) -> bool:
    """Whether ``value`` is a UUID in the 8-4-4-4-12 form APNs asks ``apns-id`` to have."""
    try:
        return len(value) == 36 and str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False
