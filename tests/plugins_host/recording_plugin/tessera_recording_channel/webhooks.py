"""The provider's callbacks: signature check, statuses into :class:`ChannelEvent` s, replies.

The provider posts ``{"events": [{"id", "status", "at", "reason"?}], "inbound": [{"id", "from",
"text", "at"}]}`` (both lists optional) with the header ``X-Recording-Signature: sha256=<hex
HMAC-SHA256 of the raw body, keyed with the webhook secret>``. ``inbound`` are customers' own
messages, from their email address; the text STOP opts them out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from core.plugin_api import ChannelEvent, DeliveryStatus, InboundMessage, WebhookRequest, WebhookResponse

SIGNATURE_HEADER = "x-recording-signature"


class _Event(BaseModel):
    id: str
    status: Literal["delivered", "read", "clicked", "failed"]
    at: datetime
    reason: str | None = None


class _Inbound(BaseModel):
    id: str
    sender: str = Field(alias="from")
    text: str
    at: datetime


class _Payload(BaseModel):
    events: list[_Event] = []
    inbound: list[_Inbound] = []


def signature(body: bytes, secret: str) -> str:
    """The signature header value the provider sends with ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _header(request: WebhookRequest, name: str) -> str | None:
    return next((value for key, value in request.headers.items() if key.lower() == name), None)


def handle(request: WebhookRequest, secret: str | None) -> WebhookResponse:
    """Verify a callback (when a secret is set) and read its events; 401 unsigned, 400 malformed."""
    if secret is not None:
        given = _header(request, SIGNATURE_HEADER) or ""
        if not hmac.compare_digest(given.encode(), signature(request.body, secret).encode()):
            return WebhookResponse(status_code=401, body="Missing or invalid X-Recording-Signature.")
    try:
        payload = _Payload.model_validate(json.loads(request.body))
    except (ValueError, ValidationError) as exc:  # ValidationError is a ValueError; named for the reader
        return WebhookResponse(status_code=400, body=f"Malformed webhook body: {exc}"[:1000])
    events = [
        ChannelEvent(
            status=DeliveryStatus(event.status),
            provider_id=event.id,
            occurred_at=event.at,
            reason_code=event.reason,
        )  # fmt: skip
        for event in payload.events
    ]
    inbound = [
        InboundMessage(
            message_id=message.id,
            identifiers={"email": message.sender},
            occurred_at=message.at,
            properties={"text": message.text},
            opt_out=message.text.strip().upper() == "STOP",
        )  # fmt: skip
        for message in payload.inbound
    ]
    return WebhookResponse(status_code=200, body="ok", events=events, inbound=inbound)
