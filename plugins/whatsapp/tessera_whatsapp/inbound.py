"""Customers' own messages in Meta's webhooks, as :class:`InboundMessage` s, and opt-out words."""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from core.plugin_api import InboundMessage

log = logging.getLogger(__name__)

# Types that are not a customer writing (a number change notice): no event, no window.
IGNORED_TYPES = {"system"}
MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")


def fold(text: str) -> str:
    """``text`` compared loosely: accents dropped, case folded, blanks squeezed, punctuation around trimmed."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    words = " ".join(plain.split())
    start, end = 0, len(words)
    while start < end and not words[start].isalnum():
        start += 1
    while end > start and not words[end - 1].isalnum():
        end -= 1
    return words[start:end]


def is_opt_out(replies: Iterable[str | None], words: Iterable[str]) -> bool:
    """Whether any reply is, as a whole, STOP or one of ``words`` (not merely containing one)."""
    wanted = {fold(word) for word in [*words, "STOP"]} - {""}
    return any(fold(reply) in wanted for reply in replies if isinstance(reply, str))


def occurred_at(timestamp: Any) -> datetime | None:
    """A webhook's Unix ``timestamp`` (seconds, as text) as an aware datetime, or None."""
    try:
        return datetime.fromtimestamp(int(timestamp), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _content(message: dict[str, Any]) -> tuple[dict[str, Any], list[str | None]]:
    """What a message says (as event properties) and the replies that may be opt-out words."""
    kind = str(message.get("type") or "")
    raw = message.get(kind)
    body: dict[str, Any] = raw if isinstance(raw, dict) else {}
    if kind == "text":
        return {"text": body.get("body")}, [body.get("body")]
    if kind == "button":  # a template's quick-reply button (Meta's "Stop promotions" among them)
        found = {"button_payload": body.get("payload"), "button_text": body.get("text")}
        return found, [body.get("payload"), body.get("text")]
    if kind == "interactive":
        raw_reply = body.get(str(body.get("type") or ""))
        reply: dict[str, Any] = raw_reply if isinstance(raw_reply, dict) else {}
        found = {"reply_type": body.get("type"), "reply_id": reply.get("id"), "text": reply.get("title")}
        return found, []  # the business wrote these choices: "Cancel" there answers its question
    if kind in MEDIA_TYPES:
        found = {"media_id": body.get("id"), "mime_type": body.get("mime_type"), "text": body.get("caption")}
        return found, []
    if kind == "location":
        keys = ("latitude", "longitude", "name", "address")
        return {f"location_{key}": body.get(key) for key in keys if body.get(key) is not None}, []
    if kind == "reaction":
        return {"reaction": body.get("emoji"), "reacted_to": body.get("message_id")}, []
    return {}, []


def inbound_messages(value: dict[str, Any], opt_out_words: list[str]) -> list[InboundMessage]:
    """The customers' messages of one ``messages`` change ``value``, in their order."""
    names = {
        str(contact.get("wa_id")): (contact.get("profile") or {}).get("name")
        for contact in value.get("contacts") or []
        if isinstance(contact, dict)
    }
    only_contact = next(iter(names)) if len(names) == 1 else ""
    found = []
    for message in value.get("messages") or []:
        if not isinstance(message, dict) or message.get("type") in IGNORED_TYPES:
            continue
        wa_id = str(message.get("from") or only_contact)
        if not message.get("id") or not wa_id.isdigit():
            continue
        content, replies = _content(message)
        properties = {"type": message.get("type"), **{k: v for k, v in content.items() if v is not None}}
        if names.get(wa_id):
            properties["profile_name"] = names[wa_id]
        context = message.get("context")
        if isinstance(context, dict) and context.get("id"):
            properties["in_reply_to"] = context["id"]
        try:
            found.append(
                InboundMessage(
                    message_id=str(message["id"]), identifiers={"whatsapp_id": wa_id, "phone": "+" + wa_id},
                    occurred_at=occurred_at(message.get("timestamp")), properties=properties,
                    opt_out=is_opt_out(replies, opt_out_words),
                )
            )  # fmt: skip
        except ValueError:  # an id longer than the core stores: skipped, so Meta does not retry for days
            log.warning("WhatsApp message %r skipped: not a valid inbound message", message.get("id"))
    return found
