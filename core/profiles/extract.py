"""Which identifiers an event carries, normalized; and which traits it sets.

``userId`` → ``user_id``; ``anonymousId`` (and an alias's ``previousId``) → ``anonymous_id``;
``traits`` (identify, group) and ``context.traits`` may carry ``email``, ``phone`` and any
identifier type a plugin registered, under that type's key (e.g. ``fcm_token``, ``whatsapp_id``);
Segment's ``context.device.token`` is a value of every type registered ``from_device_token``.
A value a type rejects is skipped and reported, never fatal to the event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.identity.graph import Identifier
from core.identity.identifiers import normalize_phone
from core.plugin_api import IdentifierType

RAW_ID_FIELDS = (("user_id", "user_id"), ("anonymous_id", "anonymous_id"), ("previous_id", "anonymous_id"))
TRAIT_EVENT_TYPES = frozenset({"identify"})


class EventFields(Protocol):
    """The columns of an ``event`` row that identify its person (``context_traits``: ``context.traits``)."""

    type: str
    user_id: str | None
    anonymous_id: str | None
    previous_id: str | None
    traits: Any
    context_traits: Any


class TraitFields(Protocol):
    """The columns of an ``event`` row that set traits."""

    type: str
    traits: Any


@dataclass
class Extracted:
    """An event's identifiers, and the problems met reading them."""

    identifiers: set[Identifier] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


def extract(event: EventFields, types: Mapping[str, IdentifierType], default_region: str) -> Extracted:
    """The normalized identifiers of ``event`` among the registered ``types``."""
    out = Extracted()

    def add(type_key: str, raw: Any) -> None:
        if raw is None or raw == "" or type_key not in types:
            return
        try:
            if type_key == "phone":
                value = normalize_phone(str(raw), default_region)
            else:
                value = types[type_key].normalize(str(raw))
        except ValueError as exc:
            out.problems.append(f"{type_key}: {exc}")
            return
        out.identifiers.add((type_key, value))

    for attribute, type_key in RAW_ID_FIELDS:
        add(type_key, getattr(event, attribute))
    for source in (event.traits, event.context_traits):
        if isinstance(source, dict):
            for type_key in types:
                if type_key in source and type_key not in {"user_id", "anonymous_id"}:
                    add(type_key, source[type_key])
    device_token = getattr(event, "device_token", None)  # only read where the caller selected it
    if isinstance(device_token, str):
        for type_key, type_ in types.items():
            if type_.from_device_token:
                add(type_key, device_token)
    return out


def trait_updates(event: TraitFields) -> dict[str, Any]:
    """The traits an event sets on its profile (identify events), without the consent convention."""
    if event.type not in TRAIT_EVENT_TYPES or not isinstance(event.traits, dict):
        return {}
    return {key: value for key, value in event.traits.items() if key != "consent"}


def display_name(traits: Mapping[str, Any], identifiers: list[Identifier]) -> str:
    """How the UI names a profile: its name traits, else its email, else a user id."""
    name = traits.get("name") or " ".join(
        str(traits[k]) for k in ("first_name", "firstName", "last_name", "lastName") if traits.get(k)
    )
    if name:
        return str(name)[:200]
    for wanted in ("email", "user_id", "phone"):
        for type_key, value in identifiers:
            if type_key == wanted:
                return value[:200]
    return ""
