"""Meta's webhooks: the GET verification handshake, signature checks, statuses into ChannelEvents.

Inbound customer messages are acknowledged but not reported: a :class:`ChannelEvent` always
names a delivery status, and the core has no way yet to turn a webhook into a profile event.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from core.plugin_api import ChannelEvent, DeliveryStatus, WebhookRequest, WebhookResponse
from tessera_whatsapp.config import WhatsAppConfig
from tessera_whatsapp.errors import classify

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


def _at(timestamp: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(timestamp), tz=UTC)
    except (TypeError, ValueError):
        return None


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
        occurred_at=_at(status.get("timestamp")), reason_code=reason, data=data,
    )  # fmt: skip


def status_events(payload: dict[str, Any]) -> list[ChannelEvent]:
    """The delivery events of a ``whatsapp_business_account`` notification, in their order."""
    events = []
    for entry in payload.get("entry") or []:
        for change in entry.get("changes") or []:
            for status in (change.get("value") or {}).get("statuses") or []:
                event = _event(status)
                if event is not None:
                    events.append(event)
    return events


def handle(config: WhatsAppConfig | None, request: WebhookRequest) -> WebhookResponse:
    """Answer the handshake, or check an event POST's signature and read its statuses."""
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
    return WebhookResponse(status_code=200, body="ok", events=status_events(payload))
