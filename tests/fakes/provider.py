"""A fake messaging provider: the recording channel's counterpart, with a real provider's rules.

``POST /v1/messages`` takes ``{"to", "title", "body", "metadata"}`` with ``Authorization: Bearer
<api key>`` and an optional ``Idempotency-Key``; it answers ``200 {"id": "msg_<hex>"}`` or an error
``{"error": {"code", "message"}}``. Every attempt is recorded, and every accepted message once:
a key sent again (per API key) gets the first answer back, or 422 ``idempotency_key_reused`` when
it comes with another message.

Three ways to run it:

* in-process, as an ASGI app: ``FakeProvider().app`` (or ``make_provider_app(ProviderState())``);
* as an HTTP server on a background thread: ``with FakeProvider(latency_ms=0) as provider: provider.url``;
* as a process of its own, for benchmarks: ``python -m tests.fakes.provider --port N --latency-ms 20
  --api-key K`` (or :class:`ProviderProcess`), read with ``GET /_recorded`` and ``GET /_stats`` and
  scripted with ``POST /_control/{fail_next,reject,script,latency,reset}`` (same JSON as the methods).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DEFAULT_API_KEY = "test-key"
REPO = Path(__file__).resolve().parents[2]
DEFAULT_CODES = {400: "invalid_request", 401: "unauthorized", 404: "not_found", 429: "rate_limited"}


@dataclass(frozen=True)
class Scripted:
    """An error the provider answers instead of accepting: HTTP status, error code, Retry-After (s)."""

    status: int
    code: str | None = None
    message: str | None = None
    retry_after: float | None = None

    @property
    def error_code(self) -> str:
        """The code in the error body: the given one, else a usual one for the status."""
        fallback = "provider_unavailable" if self.status >= 500 else "error"
        return self.code or DEFAULT_CODES.get(self.status, fallback)


@dataclass(frozen=True)
class Reply:
    """One answer of ``POST /v1/messages``."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass(frozen=True)
class Attempt:
    """One call of ``POST /v1/messages``, whatever its answer."""

    to: str | None
    idempotency_key: str | None
    status: int
    at: float


@dataclass(frozen=True)
class RecordedMessage:
    """A message the provider accepted (once per idempotency key)."""

    id: str
    to: str
    title: str | None
    body: str
    metadata: dict[str, Any]
    idempotency_key: str | None
    received_at: float


def _error(failure: Scripted) -> Reply:
    message = failure.message or f"Scripted failure {failure.status}."
    headers = {}
    if failure.retry_after is not None:
        # Retry-After is whole seconds in HTTP; keep fractions only when asked for (fast tests).
        value = failure.retry_after
        headers["Retry-After"] = str(int(value)) if float(value).is_integer() else str(value)
    return Reply(failure.status, {"error": {"code": failure.error_code, "message": message}}, headers)


def _invalid(code: str, message: str) -> Reply:
    return _error(Scripted(400, code, message))


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(raw)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _schema_problem(payload: dict[str, Any]) -> Reply | None:
    to, body, title = payload.get("to"), payload.get("body"), payload.get("title")
    if not isinstance(to, str) or "@" not in to:
        return _invalid("invalid_recipient", f"'to' must be an email address, got {to!r}.")
    if not isinstance(body, str) or not body:
        return _invalid("invalid_request", "'body' must be a non-empty string.")
    if title is not None and not isinstance(title, str):
        return _invalid("invalid_request", "'title' must be a string or null.")
    if not isinstance(payload.get("metadata", {}), dict):
        return _invalid("invalid_request", "'metadata' must be an object.")
    return None


class ProviderState:
    """The provider's settings, scripted failures and records; safe to use from any thread.

    ``api_key=None`` accepts any non-empty bearer token (the channel's sandbox, where the tenant's
    key is unknown). Scripted failures take precedence over everything but authentication.
    """

    def __init__(self, api_key: str | None = DEFAULT_API_KEY, latency_ms: float = 0.0):
        self.api_key = api_key
        self.latency_ms = latency_ms
        self._lock = threading.Lock()
        # Requests being answered right now, and the most there ever were: how concurrent senders were.
        self.in_flight = self.most_in_flight = 0
        self.reset()

    # --- scripting ---------------------------------------------------------------------------
    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 503,
        retry_after: float | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``count`` authenticated sends, to anyone, with this error."""
        with self._lock:
            self._fail_next.extend([Scripted(status, code, message, retry_after)] * count)

    def reject(self, *addresses: str, status: int = 400, code: str = "invalid_recipient") -> None:
        """Always answer sends to these addresses with this error (by default 400 invalid_recipient)."""
        with self._lock:
            for address in addresses:
                self._rejected[address] = Scripted(status, code, f"Recipient {address} is rejected.")

    def script(self, address: str, *responses: Scripted) -> None:
        """Answer the next sends to ``address`` with these errors, in order, then normally again."""
        with self._lock:
            self._scripts.setdefault(address, deque()).extend(responses)

    def reset(self) -> None:
        """Forget every record and scripted failure (the key and latency stay)."""
        with self._lock:
            self._messages: list[RecordedMessage] = []
            self._attempts: list[Attempt] = []
            # (API key, idempotency key) -> (what was sent, the answer)
            self._replies: dict[tuple[str, str], tuple[tuple[Any, ...], Reply]] = {}
            self._fail_next: deque[Scripted] = deque()
            self._rejected: dict[str, Scripted] = {}
            self._scripts: dict[str, deque[Scripted]] = {}
            self.replays = 0

    # --- reading -----------------------------------------------------------------------------
    @property
    def messages(self) -> list[RecordedMessage]:
        """The accepted messages, in arrival order (a copy)."""
        with self._lock:
            return list(self._messages)

    @property
    def attempts(self) -> list[Attempt]:
        """Every send attempt, accepted or not, in arrival order (a copy)."""
        with self._lock:
            return list(self._attempts)

    def attempts_for(self, address: str) -> int:
        """How many times a send to ``address`` was attempted."""
        return sum(1 for attempt in self.attempts if attempt.to == address)

    def stats(self) -> dict[str, Any]:
        """Counts: accepted messages, attempts, idempotent replays, attempts per HTTP status."""
        with self._lock:
            statuses: dict[str, int] = {}
            for attempt in self._attempts:
                statuses[str(attempt.status)] = statuses.get(str(attempt.status), 0) + 1
            first = self._messages[0].received_at if self._messages else None
            last = self._messages[-1].received_at if self._messages else None
            return {"accepted": len(self._messages), "attempts": len(self._attempts),
                    "replays": self.replays, "statuses": statuses, "first_at": first, "last_at": last}  # fmt: skip

    def recorded(self) -> dict[str, Any]:
        """Everything recorded, as JSON: accepted messages, attempts, and attempt counts per address."""
        attempts = self.attempts
        counts: dict[str, int] = {}
        for attempt in attempts:
            counts[str(attempt.to)] = counts.get(str(attempt.to), 0) + 1
        return {"messages": [asdict(m) for m in self.messages], "attempts": [asdict(a) for a in attempts],
                "attempt_counts": counts, "stats": self.stats()}  # fmt: skip

    # --- serving -----------------------------------------------------------------------------
    def receive(self, authorization: str | None, idempotency_key: str | None, raw: bytes) -> Reply:
        """Decide, record and return the answer to one ``POST /v1/messages``."""
        payload = _parse(raw)
        to = payload.get("to") if payload is not None else None
        now = time.time()
        # One lock for decide-and-record: two concurrent sends with one key are recorded once.
        with self._lock:
            reply = self._decide(authorization, idempotency_key, payload, now)
            self._attempts.append(
                Attempt(to if isinstance(to, str) else None, idempotency_key, reply.status, now)
            )
        return reply

    def _authorized(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        return self.api_key is None or hmac.compare_digest(token, self.api_key)

    def _decide(
        self, authorization: str | None, key: str | None, payload: dict[str, Any] | None, now: float
    ) -> Reply:
        if not self._authorized(authorization):
            return _error(Scripted(401, "unauthorized", "Missing or invalid API key."))
        if self._fail_next:
            return _error(self._fail_next.popleft())
        if payload is None:
            return _invalid("invalid_request", "The body must be a JSON object.")
        to = payload.get("to")
        if isinstance(to, str):
            if to in self._rejected:
                return _error(self._rejected[to])
            if self._scripts.get(to):
                return _error(self._scripts[to].popleft())
        problem = _schema_problem(payload)
        if problem is not None:
            return problem
        # Keys are per account, as at real providers: the sandbox serves every tenant's key.
        scoped = (str(authorization), key) if key is not None else None
        sent = (payload["to"], payload.get("title"), payload["body"])
        if scoped is not None and scoped in self._replies:
            first, reply = self._replies[scoped]
            if first != sent:  # a key reused for another message is a bug of the sender's
                return _error(
                    Scripted(422, "idempotency_key_reused", f"Key {key!r} was used for another message.")
                )
            self.replays += 1
            return reply
        message = RecordedMessage(
            id=f"msg_{uuid.uuid4().hex}", to=payload["to"], title=payload.get("title"), body=payload["body"],
            metadata=payload.get("metadata", {}), idempotency_key=key, received_at=now,
        )  # fmt: skip
        self._messages.append(message)
        reply = Reply(200, {"id": message.id}, {})
        if scoped is not None:
            self._replies[scoped] = (sent, reply)  # only successes: a retry after an error may still succeed
        return reply

    def control(self, action: str, data: dict[str, Any]) -> bool:
        """Apply a ``POST /_control/{action}`` call; False for an unknown action."""
        if action == "fail_next":
            self.fail_next(int(data.get("count", 1)), status=int(data.get("status", 503)),
                           retry_after=data.get("retry_after"), code=data.get("code"),
                           message=data.get("message"))  # fmt: skip
        elif action == "reject":
            self.reject(*data["addresses"], status=int(data.get("status", 400)),
                        code=data.get("code", "invalid_recipient"))  # fmt: skip
        elif action == "script":
            self.script(data["address"], *(Scripted(**response) for response in data["responses"]))
        elif action == "latency":
            self.latency_ms = float(data["latency_ms"])
        elif action == "reset":
            self.reset()
        else:
            return False
        return True


def make_provider_app(state: ProviderState) -> Starlette:
    """The provider's ASGI app, answering from ``state``."""

    async def send(request: Request) -> JSONResponse:
        raw = await request.body()
        reply = state.receive(
            request.headers.get("authorization"), request.headers.get("idempotency-key"), raw
        )
        state.in_flight += 1  # the event loop runs one handler at a time: no lock needed
        state.most_in_flight = max(state.most_in_flight, state.in_flight)
        try:
            if state.latency_ms > 0:
                await asyncio.sleep(state.latency_ms / 1000)
        finally:
            state.in_flight -= 1
        return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)

    async def recorded(request: Request) -> JSONResponse:
        return JSONResponse(state.recorded())

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(state.stats())

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def control(request: Request) -> JSONResponse:
        data = _parse(await request.body())
        if data is None:
            return JSONResponse(
                {"error": {"code": "invalid_request", "message": "JSON object expected."}}, 400
            )
        try:
            known = state.control(request.path_params["action"], data)
        except (KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"error": {"code": "invalid_request", "message": str(exc)}}, 400)
        if not known:
            return JSONResponse({"error": {"code": "not_found", "message": "Unknown control action."}}, 404)
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/v1/messages", send, methods=["POST"]),
            Route("/_recorded", recorded, methods=["GET"]),
            Route("/_stats", stats, methods=["GET"]),
            Route("/_health", health, methods=["GET"]),
            Route("/_control/{action}", control, methods=["POST"]),
        ]
    )


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _server(app: Starlette) -> uvicorn.Server:
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", backlog=4096)
    return uvicorn.Server(config)


@contextmanager
def serving_app(app: Any) -> Iterator[str]:
    """Serve an ASGI app on a free port of 127.0.0.1 from a background thread; yields its base URL."""
    sock = _listen("127.0.0.1", 0)
    server = _server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="served-app", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("The app did not start serving.")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class FakeProvider(ProviderState):
    """The provider with its app, optionally served over HTTP on 127.0.0.1 from a background thread.

    ``with FakeProvider() as provider:`` serves at ``provider.url`` until the block ends; the
    scripting and reading methods of :class:`ProviderState` work in either mode.
    """

    def __init__(self, *, api_key: str | None = DEFAULT_API_KEY, latency_ms: float = 0.0):
        super().__init__(api_key=api_key, latency_ms=latency_ms)
        self.app = make_provider_app(self)
        self.url: str | None = None
        self._serving: ExitStack | None = None

    def start(self) -> FakeProvider:
        """Serve on a free port of 127.0.0.1; ``url`` is set once it accepts connections."""
        self._serving = ExitStack()
        self.url = self._serving.enter_context(serving_app(self.app))
        return self

    def stop(self) -> None:
        """Stop serving (records stay readable)."""
        if self._serving is not None:
            self._serving.close()
        self._serving = None

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port of 127.0.0.1 free right now."""
    with _listen("127.0.0.1", 0) as sock:
        return int(sock.getsockname()[1])


class ProviderProcess:
    """The provider in a process of its own (benchmarks), read and scripted over HTTP.

    ``with ProviderProcess(latency_ms=20) as provider:`` then ``provider.url``,
    ``provider.stats()``, ``provider.recorded()``, ``provider.control("fail_next", count=3)``.
    """

    def __init__(self, *, port: int = 0, latency_ms: float = 0.0, api_key: str | None = DEFAULT_API_KEY):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._command = [sys.executable, "-m", "tests.fakes.provider", "--port", str(self.port),
                         "--latency-ms", str(latency_ms), "--api-key", api_key or ""]  # fmt: skip
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> ProviderProcess:
        """Start the process and wait until it answers."""
        self._process = subprocess.Popen(self._command, cwd=REPO, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{self.url}/_health", timeout=1).raise_for_status()
                return self
            except httpx.HTTPError:
                if time.monotonic() > deadline or self._process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"The fake provider process did not start: {self._command}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the process."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def stats(self) -> dict[str, Any]:
        """``GET /_stats``: counts of accepted messages, attempts, replays, statuses."""
        return httpx.get(f"{self.url}/_stats", timeout=30).raise_for_status().json()

    def recorded(self) -> dict[str, Any]:
        """``GET /_recorded``: every accepted message and attempt."""
        return httpx.get(f"{self.url}/_recorded", timeout=120).raise_for_status().json()

    def control(self, action: str, **data: Any) -> None:
        """``POST /_control/{action}`` with ``data`` (the keyword arguments of the same-named method)."""
        httpx.post(f"{self.url}/_control/{action}", json=data, timeout=30).raise_for_status()

    def __enter__(self) -> ProviderProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sign_webhook(body: bytes, secret: str) -> str:
    """The ``X-Recording-Signature`` header value of a webhook body: ``sha256=<hex HMAC>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_body(*events: dict[str, Any]) -> bytes:
    """A webhook body carrying these events (``{"id", "status", "at", "reason"?}`` each)."""
    return json.dumps({"events": list(events)}).encode()


def main(argv: list[str] | None = None) -> None:
    """Serve the provider until interrupted (``python -m tests.fakes.provider --help``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay of every send answer")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="empty: accept any bearer token")
    args = parser.parse_args(argv)
    sock = _listen(args.host, args.port)
    state = ProviderState(api_key=args.api_key or None, latency_ms=args.latency_ms)
    print(f"fake provider listening on http://{args.host}:{sock.getsockname()[1]}", flush=True)
    _server(make_provider_app(state)).run(sockets=[sock])


if __name__ == "__main__":
    main()
