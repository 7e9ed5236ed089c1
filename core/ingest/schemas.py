"""The events of the Segment HTTP Tracking API, as pydantic models.

Common fields: ``userId``, ``anonymousId``, ``context``, ``integrations``, ``timestamp``,
``sentAt``, ``messageId`` and ``type``; then per type:

- identify: ``traits`` (RudderStack's SDKs send them as ``context.traits``; taken from there when
  the top-level ``traits`` is absent or empty)
- track: ``event`` (required), ``properties``
- page / screen: ``name``, ``category``, ``properties``
- group: ``groupId`` (required), ``traits``
- alias: ``previousId`` and ``userId`` (both required; no ``anonymousId`` needed)

Rules, following what Segment accepts:

- ``userId`` or ``anonymousId`` is required (alias: ``userId`` and ``previousId``). Identifiers
  may arrive as numbers and are stored as strings (``123`` → ``"123"``); an empty string counts
  as absent; booleans are refused.
- ``timestamp`` / ``sentAt`` are ISO-8601 strings, stored as aware UTC datetimes; a value without
  an offset is taken as UTC; anything else (including numbers) is refused with the reason.
- ``null`` for an object field (``properties``, ``traits``, ``context``, ``integrations``) means
  empty; any other non-object value is refused.
- Unknown extra fields are tolerated and dropped, as Segment tolerates them.
- ``messageId`` is optional. Segment deduplicates by ``messageId`` only, so an event without one
  gets a random UUID4 (it is then never a duplicate of anything; SDKs always send one).
- Strings are limited to the column sizes (message id 200, identifiers 255, names 500) and may not
  contain NUL characters or unpaired surrogates, which PostgreSQL text cannot hold.

The models are validated through :data:`ADAPTERS` (one :class:`TypeAdapter` per type, built once);
:func:`parse_event` turns a validation failure into one readable reason.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from core.ingest.models import IDENTIFIER_LENGTH, MESSAGE_ID_LENGTH, NAME_LENGTH, EventType


class InvalidEvent(ValueError):
    """An event that cannot be accepted; ``reason`` says why, in words an SDK user can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _check_text(value: str, limit: int) -> str:
    if len(value) > limit:
        raise ValueError(f"is longer than {limit} characters")
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("is not valid Unicode (unpaired surrogate)") from None
    return value


def identifier(value: Any, limit: int = IDENTIFIER_LENGTH) -> str | None:
    """A user/anonymous/group/message id as a string: numbers converted, ``""`` taken as absent."""
    if value is None:
        return None
    if isinstance(value, str):
        return _check_text(value, limit) if value else None
    if isinstance(value, bool):
        raise ValueError("must be a string or a number, not a boolean")
    if isinstance(value, int):
        return _check_text(str(value), limit)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return _check_text(str(int(value)) if value.is_integer() else repr(value), limit)
    raise ValueError(f"must be a string or a number, not {_json_type(value)}")


def iso_timestamp(value: Any) -> datetime | None:
    """An ISO-8601 string as an aware UTC datetime (no offset: UTC); None stays None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"must be an ISO-8601 date-time string, not {_json_type(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value[:50]!r} is not an ISO-8601 date-time") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value[:50]!r} is out of range") from None


def required_identifier(value: Any) -> str:
    """Like :func:`identifier`, but absent (``null`` or ``""``) is an error."""
    found = identifier(value)
    if found is None:
        raise ValueError("is required")
    return found


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


class SegmentEvent(BaseModel):
    """Fields common to every call."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    kind: ClassVar[EventType]

    message_id: str | None = Field(default=None, alias="messageId")
    user_id: str | None = Field(default=None, alias="userId")
    anonymous_id: str | None = Field(default=None, alias="anonymousId")
    context: dict[str, Any] = Field(default_factory=dict)
    integrations: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime | None = None
    sent_at: datetime | None = Field(default=None, alias="sentAt")

    @field_validator("user_id", "anonymous_id", mode="before")
    @classmethod
    def _identifier(cls, value: Any) -> str | None:
        return identifier(value)

    @field_validator("message_id", mode="before")
    @classmethod
    def _message_id(cls, value: Any) -> str | None:
        return identifier(value, MESSAGE_ID_LENGTH)

    @field_validator("timestamp", "sent_at", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> datetime | None:
        return iso_timestamp(value)

    @field_validator("context", "integrations", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="after")
    def _someone(self) -> SegmentEvent:
        if self.user_id is None and self.anonymous_id is None:
            raise ValueError("userId or anonymousId is required")
        return self


class _WithProperties(SegmentEvent):
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("properties", mode="before")
    @classmethod
    def _null_properties(cls, value: Any) -> Any:
        return {} if value is None else value


class NamedView(_WithProperties):
    """Fields of page and screen views."""

    name: str | None = None
    category: str | None = None

    @field_validator("name", "category", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _check_text(value, NAME_LENGTH) or None
        return value


class Identify(SegmentEvent):
    """Who the user is: ``traits`` about them."""

    kind = EventType.identify
    traits: dict[str, Any] = Field(default_factory=dict)

    @field_validator("traits", mode="before")
    @classmethod
    def _null_traits(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="after")
    def _traits_from_context(self) -> Identify:
        # RudderStack's SDKs (and some Segment clients) put identify traits in context.traits.
        if not self.traits and isinstance(self.context.get("traits"), dict):
            self.traits = dict(self.context["traits"])
        return self


class Track(_WithProperties):
    """Something the user did: ``event`` (required) with ``properties``."""

    kind = EventType.track
    event: str

    @field_validator("event", mode="before")
    @classmethod
    def _event(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value:
                raise ValueError("must not be empty")
            return _check_text(value, NAME_LENGTH)
        return value


class Page(NamedView):
    """A web page view: ``name``, ``category``, ``properties``."""

    kind = EventType.page


class Screen(NamedView):
    """A mobile screen view: ``name``, ``category``, ``properties``."""

    kind = EventType.screen


class Group(SegmentEvent):
    """The user belongs to a group (account, company): ``groupId`` (required), ``traits`` of it."""

    kind = EventType.group
    group_id: str = Field(alias="groupId")
    traits: dict[str, Any] = Field(default_factory=dict)

    @field_validator("group_id", mode="before")
    @classmethod
    def _group_id(cls, value: Any) -> str:
        return required_identifier(value)

    @field_validator("traits", mode="before")
    @classmethod
    def _null_traits(cls, value: Any) -> Any:
        return {} if value is None else value


class Alias(SegmentEvent):
    """Two identities are one: ``previousId`` becomes ``userId`` (both required)."""

    kind = EventType.alias
    previous_id: str = Field(alias="previousId")

    @field_validator("previous_id", mode="before")
    @classmethod
    def _previous_id(cls, value: Any) -> str:
        return required_identifier(value)

    @model_validator(mode="after")
    def _someone(self) -> Alias:
        if self.user_id is None:
            raise ValueError("userId is required")
        return self


EVENT_MODELS: dict[str, type[SegmentEvent]] = {
    model.kind.value: model for model in (Identify, Track, Page, Screen, Group, Alias)
}
ADAPTERS: dict[str, TypeAdapter[Any]] = {kind: TypeAdapter(model) for kind, model in EVENT_MODELS.items()}
ALIASES = {
    name: field.alias or name for model in EVENT_MODELS.values() for name, field in model.model_fields.items()
}


def _reason(error: ValidationError) -> str:
    parts = []
    for problem in error.errors(include_url=False, include_input=False):
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "missing":
            message = "is required"
        elif problem["type"] == "dict_type":
            message = "must be an object"
        elif problem["type"] == "string_type":
            message = "must be a string"
        field = ".".join(ALIASES.get(str(p), str(p)) for p in problem["loc"])
        parts.append(f"{field} {message}" if field else message)
    return "; ".join(parts)


def parse_event(item: Any, default_type: str | None = None) -> SegmentEvent:
    """Validate one event (its ``type``, else ``default_type``); :class:`InvalidEvent` if invalid."""
    if not isinstance(item, dict):
        raise InvalidEvent(f"an event must be a JSON object, not {_json_type(item)}")
    kind = item.get("type") or default_type
    adapter = ADAPTERS.get(kind) if isinstance(kind, str) else None
    if adapter is None:
        expected = ", ".join(ADAPTERS)
        if kind is None:
            raise InvalidEvent(f"type is required (one of {expected})")
        raise InvalidEvent(f"type {str(kind)[:50]!r} is not one of {expected}")
    try:
        event: SegmentEvent = adapter.validate_python(item)
    except ValidationError as exc:
        raise InvalidEvent(_reason(exc)) from None
    return event
