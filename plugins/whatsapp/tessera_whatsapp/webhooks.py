"""Meta's webhooks: the GET verification handshake, signature checks, statuses into ChannelEvents
and customers' messages into InboundMessages."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from core.plugin_api import ChannelEvent, DeliveryStatus, InboundMessage, WebhookRequest, WebhookResponse
from tessera_whatsapp.config import WhatsAppConfig
from tessera_whatsapp.errors import classify
from tessera_whatsapp.inbound import inbound_messages, occurred_at

SIGNATURE_HEADER = "x-hub-signature-256"
STATUSES = {"sent", "delivered", "read", "failed"}


def signature(body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends with ``body``."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify_subscription(config: WhatsAppConfig | None, query: dict[str, str]) -> WebhookResponse:
    """Meta's GET handshake: echo ``hub.challenge`` if mode and verify token match, else 403."""
    expected = config.webhook_verify_token.get_secret_value() if config is not None else ""
    given = query.get("hub.verify_token", "")
    if not expected or query.get("hub.mode") != "subscribe" or not hmac.compare_digest(given, expected):
        return WebhookResponse(status_code=403, body="Verification failed: wrong hub.mode or verify token.")
    return WebhookResponse(status_code=200, body=query.get("hub.challenge", ""))


def _header(request: WebhookRequest, name: str) -> str:
    return next((value for key, value in request.headers.items() if key.lower() == name), "")


def _event(status: dict[str, Any]) -> ChannelEvent | None:
    if status.get("status") not in STATUSES or not status.get("id"):
        return None
    reason = None
    data: dict[str, Any] = {}
    errors = status.get("errors") or []
    if status["status"] == "failed" and errors:
        first = errors[0]
        code = first.get("code") if isinstance(first.get("code"), int) else None
        reason = classify(code, 200).reason_code
        data = {"error_code": code, "error_title": first.get("title") or first.get("message")}
    return ChannelEvent(
        status=DeliveryStatus(status["status"]), provider_id=status["id"], address=status.get("recipient_id"),
        occurred_at=occurred_at(status.get("timestamp")), reason_code=reason, data=data,
    )  # fmt: skip


def _values(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``value`` of each ``messages`` change of a notification."""
    values = []
    for entry in payload.get("entry") or []:
        for change in (entry.get("changes") or []) if isinstance(entry, dict) else []:
            value = change.get("value") if isinstance(change, dict) else None
            if isinstance(value, dict) and change.get("field", "messages") == "messages":
                values.append(value)
    return values


def status_events(payload: dict[str, Any]) -> list[ChannelEvent]:
    """The delivery events of a ``whatsapp_business_account`` notification, in their order."""
    events = []
    for value in _values(payload):
        for status in value.get("statuses") or []:
            event = _event(status) if isinstance(status, dict) else None
            if event is not None:
                events.append(event)
    return events


def customer_messages(payload: dict[str, Any], opt_out_words: list[str]) -> list[InboundMessage]:
    """The customers' messages of a notification, each marked as an opt-out or not."""
    return [found for value in _values(payload) for found in inbound_messages(value, opt_out_words)]


def handle(config: WhatsAppConfig | None, request: WebhookRequest) -> WebhookResponse:
    """Answer the handshake, or check an event POST's signature and read its statuses and messages."""
    if request.method == "GET":
        return verify_subscription(config, request.query)
    if request.method != "POST":
        return WebhookResponse(status_code=405, body="Only GET (verification) and POST (events).")
    if config is None:
        return WebhookResponse(status_code=403, body="WhatsApp is not configured for this tenant.")
    given = _header(request, SIGNATURE_HEADER)
    # Over the raw bytes as received: re-serialised JSON would not match Meta's escaping.
    expected = signature(request.body, config.app_secret.get_secret_value())
    if not given:
        return WebhookResponse(status_code=401, body="Missing X-Hub-Signature-256.")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return WebhookResponse(status_code=403, body="Invalid X-Hub-Signature-256.")
    try:
        payload = json.loads(request.body)
    except ValueError as exc:
        return WebhookResponse(status_code=400, body=f"Malformed webhook body: {exc}"[:1000])
    if not isinstance(payload, dict):
        return WebhookResponse(status_code=400, body="Malformed webhook body: not an object.")
    return WebhookResponse(
        status_code=200, body="ok", events=status_events(payload),
        inbound=customer_messages(payload, config.opt_out_list()),
    )  # fmt: skip
