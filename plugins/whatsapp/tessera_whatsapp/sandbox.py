"""A local fake of Meta's WhatsApp Cloud API (Graph API) and of its webhook sender.

It fakes ``POST /{version}/{phone_number_id}/messages`` (bearer auth, body checks, approved
templates, the 24-hour customer service window, a per-number rate limit counted on arrival by a
bucket holding one second's worth, as our notes on Meta describe it, and the optional pair
limit), the template list ``GET /{version}/{waba_id}/message_templates`` (bearer
auth, ``fields``, cursor paging with ``limit``/``after`` and ``paging.next``), and control
endpoints under ``/_sandbox/``: ``inbound`` (a customer wrote: opens their window), ``fail_next``
(scripted errors), ``settings`` (latency, rate limit, pair interval), ``state`` and ``webhook``
(post a signed status, text or any-type customer message notification).

Free-form messages outside the window are refused at once with 131047; Meta usually accepts
them and reports 131047 in a ``failed`` status webhook later.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from core.plugin_api import NO_TELEMETRY

SANDBOX_PHONE_NUMBER_ID = "106540352242922"
SANDBOX_WABA_ID = "102290129340398"
SANDBOX_TOKEN = "EAAG-sandbox-token"
SANDBOX_APP_SECRET = "sandbox-app-secret"
SANDBOX_VERIFY_TOKEN = "sandbox-verify-token"
WINDOW_SECONDS = 24 * 3600
BAD_TOKEN = "Invalid OAuth access token - Cannot parse access token"
EXPIRED_TOKEN = "Error validating access token: Session has expired on Monday, 01-Jan-24 00:00:00 PST."
MESSAGES = {
    100: "(#100) Invalid parameter",
    131008: "(#131008) Required parameter is missing",
    131026: "(#131026) Message undeliverable",
    131047: "(#131047) Re-engagement message",
    130429: "(#130429) Rate limit hit",
    131056: "(#131056) (Business Account, Consumer Account) pair rate limit hit",
    132000: "(#132000) Number of parameters does not match the expected number of params",
    132001: "(#132001) Template name does not exist in the translation",
    132015: "(#132015) Template is Paused",
    131000: "(#131000) Something went wrong",
}
DETAILS = {
    130429: "Message failed to send because there were too many messages sent from this phone number "
    "in a short period of time",
    131047: "Message failed to send because more than 24 hours have passed since the customer last "
    "replied to this number.",
}


def sandbox_config() -> dict[str, Any]:
    """Config values the fake accepts (its number, account, token and secrets)."""
    return {
        "phone_number_id": SANDBOX_PHONE_NUMBER_ID,
        "business_account_id": SANDBOX_WABA_ID,
        "access_token": SANDBOX_TOKEN,
        "app_secret": SANDBOX_APP_SECRET,
        "webhook_verify_token": SANDBOX_VERIFY_TOKEN,
    }


def meta_error(
    status_code: int, code: int, message: str | None = None, type_: str = "OAuthException", **extra: Any
) -> JSONResponse:
    """A response in the Graph API's error envelope, with a fresh ``fbtrace_id``."""
    text = message or MESSAGES.get(code, f"(#{code}) Error")
    error: dict[str, Any] = {"message": text, "type": type_, "code": code}
    if code in DETAILS:
        error["error_data"] = {"messaging_product": "whatsapp", "details": DETAILS[code]}
    error.update(extra)
    error["fbtrace_id"] = secrets.token_urlsafe(16)
    headers = {}
    if status_code == 401:
        headers["WWW-Authenticate"] = f'OAuth "Facebook Platform" "invalid_token" "{text}"'
    if status_code == 429:
        headers["Retry-After"] = "1"
    return JSONResponse({"error": error}, status_code=status_code, headers=headers)


@dataclass
class FakeTemplate:
    """One message template of the fake business account."""

    name: str
    language: str
    body_params: int = 0
    status: str = "APPROVED"
    category: str = "UTILITY"
    body_text: str = ""
    buttons: list[dict[str, Any]] = field(default_factory=list)

    def components(self) -> list[dict[str, Any]]:
        """The template's components as Meta lists them (BODY, then BUTTONS if any)."""
        params = " ".join(f"{{{{{i}}}}}" for i in range(1, self.body_params + 1))
        found: list[dict[str, Any]] = [{"type": "BODY", "text": self.body_text or f"Hello {params}".strip()}]
        if self.buttons:
            found.append({"type": "BUTTONS", "buttons": self.buttons})
        return found

    def listed(self) -> dict[str, Any]:
        """The template as ``GET .../message_templates`` lists it."""
        return {"name": self.name, "language": self.language, "status": self.status, "category": self.category,
                "components": self.components(), "id": str(abs(hash((self.name, self.language))))}  # fmt: skip


@dataclass
class Scripted:
    """A scripted failure answered instead of the next sends."""

    code: int
    status_code: int
    remaining: int


@dataclass
class FakeWhatsApp:
    """The fake's state (plain data tests can drive) and its ASGI ``app``."""

    tokens: set[str] = field(default_factory=lambda: {SANDBOX_TOKEN})
    expired_tokens: set[str] = field(default_factory=set)
    phone_numbers: set[str] = field(default_factory=lambda: {SANDBOX_PHONE_NUMBER_ID})
    waba_id: str = SANDBOX_WABA_ID
    app_secret: str = SANDBOX_APP_SECRET
    templates: list[FakeTemplate] = field(
        default_factory=lambda: [
            FakeTemplate("hello_world", "en_US"),
            FakeTemplate(
                "order_update", "en_US", body_params=2, body_text="Hi {{1}}, order {{2}} has shipped."
            ),
            FakeTemplate("spring_sale", "en_US", body_params=1, status="PAUSED", category="MARKETING"),
        ]
    )
    rate_limit: int = 80
    latency: float = 0.0
    # Meta's pair limit (131056) between sends to one customer, in seconds; 0 leaves it off.
    pair_interval: float = 0.0
    template_page_size: int = 25
    template_pages_served: int = 0
    last_inbound: dict[str, float] = field(default_factory=dict)
    scripted: deque[Scripted] = field(default_factory=deque)
    sent: list[dict[str, Any]] = field(default_factory=list)
    request_times: list[float] = field(default_factory=list)
    rate_limited: int = 0
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # phone: (tokens, at)
    _last_to: dict[tuple[str, str], float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.app = self._build()

    # --- driving the fake from tests -------------------------------------------------------
    def fail_next(self, code: int, status_code: int = 400, count: int = 1) -> None:
        """Answer the next ``count`` sends with Meta's error ``code``."""
        self.scripted.append(Scripted(code, status_code, count))

    def inbound(self, wa_id: str, at: float | None = None) -> None:
        """Record that ``wa_id`` wrote to the business: opens their 24-hour window."""
        self.last_inbound[wa_id] = time.time() if at is None else at

    def state(self) -> dict[str, Any]:
        """What the fake holds, as JSON."""
        return {
            "sent": self.sent,
            "templates": [t.__dict__ for t in self.templates],
            "last_inbound": self.last_inbound,
            "rate_limit": self.rate_limit,
            "latency": self.latency,
            "rate_limited": self.rate_limited,
            "requests": len(self.request_times),
            "max_per_second": self.max_per_second(),
        }

    def max_per_second(self) -> int:
        """The most sends received within any one-second window."""
        times = sorted(self.request_times)
        best, start = 0, 0
        for end, at in enumerate(times):
            while at - times[start] >= 1.0:
                start += 1
            best = max(best, end - start + 1)
        return best

    # --- webhook sender --------------------------------------------------------------------
    def status_payload(
        self, wamid: str, status: str, recipient: str, error_code: int | None = None
    ) -> dict[str, Any]:
        """A status notification in Meta's envelope (``failed`` carries ``error_code``)."""
        entry: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(int(time.time())),
                                 "recipient_id": recipient}  # fmt: skip
        if error_code is not None:
            title = MESSAGES.get(error_code, "").partition(") ")[2] or "Error"
            entry["errors"] = [{"code": error_code, "title": title, "message": title,
                                "error_data": {"details": DETAILS.get(error_code, title)}}]  # fmt: skip
        return self._envelope({"statuses": [entry]})

    def inbound_payload(self, wa_id: str, text: str, name: str = "Customer") -> dict[str, Any]:
        """An inbound text message notification in Meta's envelope."""
        return self.message_payload(wa_id, {"type": "text", "text": {"body": text}}, name)

    def message_payload(
        self, wa_id: str, message: dict[str, Any], name: str = "Customer", at: float | None = None
    ) -> dict[str, Any]:
        """A customer's message of any type (``{"type": "button", "button": {...}, "context": ...}``)
        in Meta's envelope, with ``from``, a fresh ``id`` and ``timestamp`` unless given."""
        stamp = str(int(time.time() if at is None else at))
        full = {"from": wa_id, "id": "wamid." + secrets.token_urlsafe(24), "timestamp": stamp, **message}
        return self._envelope({"contacts": [{"profile": {"name": name}, "wa_id": wa_id}], "messages": [full]})

    def _envelope(self, value: dict[str, Any]) -> dict[str, Any]:
        metadata = {"display_phone_number": "15550783881", "phone_number_id": sorted(self.phone_numbers)[0]}
        value = {"messaging_product": "whatsapp", "metadata": metadata, **value}
        return {"object": "whatsapp_business_account",
                "entry": [{"id": self.waba_id, "changes": [{"field": "messages", "value": value}]}]}  # fmt: skip

    def signed(self, payload: dict[str, Any], secret: str | None = None) -> tuple[bytes, dict[str, str]]:
        """The raw body (escaped unicode, as Meta sends) and headers for a notification."""
        raw = json.dumps(payload, ensure_ascii=True).encode()
        digest = hmac.new((secret or self.app_secret).encode(), raw, hashlib.sha256).hexdigest()
        return raw, {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + digest}

    def post_webhook(self, url: str, payload: dict[str, Any], secret: str | None = None) -> int:
        """POST a signed notification to ``url``, as Meta does; the receiver's HTTP status."""
        raw, headers = self.signed(payload, secret)
        return httpx.post(url, content=raw, headers=headers, timeout=10).status_code

    # --- the Graph API ---------------------------------------------------------------------
    def _auth_error(self, request: Request) -> JSONResponse | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if token in self.expired_tokens:
            return meta_error(401, 190, EXPIRED_TOKEN, error_subcode=463)
        if scheme.lower() != "bearer" or token not in self.tokens:
            return meta_error(401, 190, BAD_TOKEN)
        return None

    def _over_rate(self, phone: str) -> bool:
        """Meta's throughput limit: a token bucket per number holding one second's worth."""
        with self._lock:
            now = time.monotonic()
            self.request_times.append(time.time())
            tokens, at = self._buckets.get(phone, (float(self.rate_limit), now))
            tokens = min(float(self.rate_limit), tokens + (now - at) * self.rate_limit)
            if tokens < 1.0:
                self._buckets[phone] = (tokens, now)
                self.rate_limited += 1
                return True
            self._buckets[phone] = (tokens - 1.0, now)
            return False

    def _pair_limited(self, phone: str, to: str) -> bool:
        with self._lock:
            now = time.monotonic()
            last = self._last_to.get((phone, to))
            if self.pair_interval and last is not None and now - last < self.pair_interval:
                return True
            self._last_to[(phone, to)] = now
            return False

    def _scripted(self) -> Scripted | None:
        with self._lock:
            if not self.scripted:
                return None
            head = self.scripted[0]
            head.remaining -= 1
            if head.remaining <= 0:
                self.scripted.popleft()
            return head

    def _check(self, body: Any) -> JSONResponse | None:
        """Meta's behavioural checks of a message body (not the spec's ``required`` lists)."""
        if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
            return meta_error(400, 100, "(#100) The parameter messaging_product is required.")
        if not body.get("to"):
            return meta_error(400, 131008, "(#131008) Required parameter is missing: to")
        kind = body.get("type", "text")
        content = body.get(kind)
        if kind not in ("template", "text", "image", "video", "document", "audio") or not isinstance(
            content, dict
        ):
            return meta_error(400, 131008, f"(#131008) Required parameter is missing: {kind}")
        if kind == "text" and not (isinstance(content.get("body"), str) and 0 < len(content["body"]) <= 4096):
            return meta_error(400, 100, "(#100) Param text['body'] must be 1 to 4096 characters.")
        if kind in ("image", "video", "document", "audio") and not (content.get("link") or content.get("id")):
            return meta_error(400, 131008, f"(#131008) Required parameter is missing: {kind}.link")
        if kind == "template":
            return self._check_template(content)
        if time.time() - self.last_inbound.get(str(body["to"]), float("-inf")) > WINDOW_SECONDS:
            return meta_error(400, 131047)
        return None

    def _check_template(self, content: dict[str, Any]) -> JSONResponse | None:
        language = (content.get("language") or {}).get("code")
        if not content.get("name") or not language:
            return meta_error(400, 131008, "(#131008) Required parameter is missing: template.name/language")
        found = next((t for t in self.templates if (t.name, t.language) == (content["name"], language)), None)
        if found is None or found.status not in ("APPROVED", "PAUSED"):
            return meta_error(404, 132001)
        if found.status == "PAUSED":
            return meta_error(400, 132015)
        body = [c for c in content.get("components") or [] if c.get("type") == "body"]
        given = len(body[0].get("parameters") or []) if body else 0
        if given != found.body_params:
            return meta_error(400, 132000)
        return None

    def _template_page(self, request: Request) -> JSONResponse:
        """One page of the template list, with Graph API cursor paging (``limit``, ``after``, ``next``)."""
        try:
            limit = min(int(request.query_params.get("limit", self.template_page_size)), 1000)
            start = int(base64.b64decode(request.query_params.get("after", "") or "MA==").decode())
        except ValueError:
            return meta_error(400, 100, "(#100) Invalid parameter: limit or after", "GraphMethodException")
        if limit < 1:
            return meta_error(
                400, 100, "(#100) Param limit must be a positive number", "GraphMethodException"
            )
        page = self.templates[start : start + limit]
        wanted = request.query_params.get("fields")
        keep = set(wanted.split(",")) | {"id"} if wanted else {"name", "language", "status", "category", "id"}
        data = [{k: v for k, v in t.listed().items() if k in keep} for t in page]

        def cursor(index: int) -> str:
            return base64.b64encode(str(index).encode()).decode()

        paging: dict[str, Any] = {"cursors": {"before": cursor(start), "after": cursor(start + len(page))}}
        if start + limit < len(self.templates):
            query = {**request.query_params, "limit": str(limit), "after": cursor(start + limit)}
            paging["next"] = str(request.url.replace_query_params(**query))
        return JSONResponse({"data": data, "paging": paging})

    def _build(self) -> FastAPI:
        app = FastAPI(
            title="Tessera sandbox: WhatsApp Cloud API",
            docs_url=None,
            redoc_url=None,
            openapi_url=None,
            telemetry=NO_TELEMETRY,
        )

        @app.get("/_sandbox/state")
        async def state() -> dict[str, Any]:
            return self.state()

        @app.post("/_sandbox/inbound")
        async def inbound(request: Request) -> dict[str, Any]:
            data = await request.json()
            self.inbound(str(data["from"]), data.get("at"))
            return {"ok": True}

        @app.post("/_sandbox/fail_next")
        async def fail_next(request: Request) -> dict[str, Any]:
            data = await request.json()
            self.fail_next(int(data["code"]), int(data.get("status_code", 400)), int(data.get("count", 1)))
            return {"ok": True}

        @app.post("/_sandbox/settings")
        async def settings(request: Request) -> dict[str, Any]:
            data = await request.json()
            self.rate_limit = int(data.get("rate_limit", self.rate_limit))
            self.latency = float(data.get("latency", self.latency))
            self.pair_interval = float(data.get("pair_interval", self.pair_interval))
            return {
                "rate_limit": self.rate_limit,
                "latency": self.latency,
                "pair_interval": self.pair_interval,
            }

        @app.post("/_sandbox/webhook")
        async def webhook(request: Request) -> dict[str, Any]:
            data = await request.json()
            if "status" in data:
                payload = self.status_payload(
                    data["id"], data["status"], data.get("to", ""), data.get("error_code")
                )
            elif isinstance(data.get("message"), dict):
                payload = self.message_payload(str(data["from"]), data["message"])
            else:
                payload = self.inbound_payload(str(data["from"]), str(data.get("text", "")))
            status = await asyncio.to_thread(self.post_webhook, data["url"], payload)
            return {"status_code": status, "payload": payload}

        @app.get("/{version}/{waba_id}/message_templates")
        async def templates(request: Request, version: str, waba_id: str) -> JSONResponse:
            if (refused := self._auth_error(request)) is not None:
                return refused
            if waba_id != self.waba_id:
                return meta_error(400, 100, f"Unsupported get request. Object with ID '{waba_id}' does not exist.",
                                  "GraphMethodException")  # fmt: skip
            self.template_pages_served += 1
            return self._template_page(request)

        @app.post("/{version}/{phone}/messages")
        async def messages(request: Request, version: str, phone: str) -> JSONResponse:
            refused = self._auth_error(request)
            # Counted on arrival, as Meta counts; answered after the latency.
            over = refused is None and phone in self.phone_numbers and self._over_rate(phone)
            if self.latency:
                await asyncio.sleep(self.latency)
            if refused is not None:
                return refused
            if phone not in self.phone_numbers:
                text = f"Unsupported post request. Object with ID '{phone}' does not exist."
                return meta_error(400, 100, text, "GraphMethodException")
            if over:
                return meta_error(429, 130429, error_subcode=2494055)
            if (scripted := self._scripted()) is not None:
                return meta_error(scripted.status_code, scripted.code)
            try:
                body = await request.json()
            except ValueError:
                return meta_error(400, 100, "(#100) The request body is not JSON.")
            if (refused := self._check(body)) is not None:
                return refused
            if self._pair_limited(phone, str(body["to"])):
                return meta_error(400, 131056)
            wamid = "wamid." + base64.b64encode(secrets.token_bytes(27)).decode()
            self.sent.append({"id": wamid, "body": body})
            to = str(body["to"])
            return JSONResponse({"messaging_product": "whatsapp",
                                 "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
                                 "messages": [{"id": wamid}]})  # fmt: skip

        @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        async def other(request: Request, path: str) -> JSONResponse:
            if (refused := self._auth_error(request)) is not None:
                return refused
            return meta_error(400, 100, f"Unsupported {request.method.lower()} request: /{path} is not faked.",
                              "GraphMethodException")  # fmt: skip

        return app


def create_app() -> FastAPI:
    """A fresh fake's ASGI app (``uvicorn --factory tessera_whatsapp.sandbox:create_app``)."""
    return FakeWhatsApp().app
