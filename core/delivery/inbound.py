"""Customers' own messages to the business, as providers report them: events on their profiles.

Each :class:`InboundMessage` becomes a ``track`` event (named by the channel's ``inbound_event``)
whose identifiers sit in ``context.traits``, so identity resolution finds or creates the sender's
profile like for any event. An opt-out adds an ``identify`` event withdrawing the channel's
marketing consent. Message ids derive from the provider's, so a replayed webhook stores nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import model_validator
from sqlmodel import Session

from core.db.base import utcnow
from core.ingest.models import MESSAGE_ID_LENGTH
from core.ingest.schemas import Identify, Track
from core.ingest.service import IngestResult, Prepared, _encode, store, to_row
from core.plugin_api import InboundMessage

SOURCE = "inbound"


class _InboundTrack(Track):
    @model_validator(mode="after")
    def _someone(self) -> _InboundTrack:
        return self  # the sender's identifiers are in context.traits


class _InboundIdentify(Identify):
    @model_validator(mode="after")
    def _someone(self) -> _InboundIdentify:
        return self


def _item(channel: str, message: InboundMessage, suffix: str = "") -> dict[str, Any]:
    return {
        "messageId": f"{channel}:{message.message_id}{suffix}"[:MESSAGE_ID_LENGTH],
        "timestamp": (message.occurred_at or utcnow()).isoformat(),
        "context": {"traits": dict(message.identifiers), "channel": channel},
    }


def record_inbound(
    session: Session, tenant: str, channel: str, event_name: str, messages: Sequence[InboundMessage]
) -> IngestResult:
    """Store each message as an event (and each opt-out as a consent withdrawal); the caller commits.

    The events are processed like any other (profiles, segments, journeys' "wait for an event").
    """
    prepared = Prepared()
    received_at = utcnow()
    for index, message in enumerate(messages):
        events: list[tuple[type[Track] | type[Identify], dict[str, Any]]] = [
            (_InboundTrack, {**_item(channel, message), "type": "track", "event": event_name,
                             "properties": {**message.properties, "channel": channel}}),
        ]  # fmt: skip
        if message.opt_out:
            consent = {"consent": {channel: False}}
            events.append((_InboundIdentify, {**_item(channel, message, ":opt-out"), "traits": consent}))
        for model, item in events:
            try:
                row = to_row(model.model_validate(item), received_at=received_at, source=SOURCE)
                encoded = _encode(row)
            except ValueError as exc:  # a ValidationError, or InvalidEvent: what no table can hold
                prepared.rejected.append({"index": index, "reason": str(exc)[:500]})
                continue
            prepared.rows.append(row)
            prepared.encoded.append(encoded)
    return store(session, tenant, prepared)
