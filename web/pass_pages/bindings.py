"""The values a pass text can show, offered as a picker: traits, computed traits, loyalty, the pass itself.

Each choice is the personalization text that shows it (``{{ loyalty.balance }}``), grouped for
the picker, and the identifiers a barcode can hold.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from core.delivery.recipients import COMPUTED_FIELDS
from core.loyalty.standing import FIELD_NAMES
from core.passes.ui_queries import program_keys, trait_names

IDENTIFIER_TRAITS = ("email", "phone", "user_id", "customer_id", "member_id", "card_number")


@dataclass(frozen=True)
class Group:
    """Bindable values of one kind: a heading and (personalization text, what it shows) pairs."""

    label: str
    choices: list[tuple[str, str]]


def _value(path: str) -> str:
    return "{{ " + path + " }}"


def bindable_values(session: Session) -> list[Group]:
    """What the tenant's pass texts can show, by kind."""
    traits = Group("Profile traits", [(_value(f"traits.{name}"), name) for name in trait_names(session)])
    computed = Group("Computed traits", [(_value(f"computed.{name}"), name) for name in COMPUTED_FIELDS])
    keys = program_keys(session)
    loyalty = [(_value(f"loyalty.{name}"), f"{name} (first program)") for name in FIELD_NAMES] if keys else []
    for key in keys:
        loyalty += [(_value(f"loyalty.{key}.{name}"), f"{key}: {name}") for name in FIELD_NAMES]
    profile = [(_value("profile.name"), "the profile's name"), (_value("profile.id"), "the profile's id")]
    groups = [traits, computed, Group("Loyalty", loyalty), Group("Profile", profile),
              Group("This pass", [(_value("wallet.serial"), "its serial number")])]  # fmt: skip
    return [group for group in groups if group.choices]


def barcode_identifiers(session: Session) -> list[tuple[str, str]]:
    """What a barcode can hold: the pass serial, the profile id, the referral code and identifier traits."""
    known = set(trait_names(session))
    found = [(_value("wallet.serial"), "the pass serial (identifies the pass)"),
             (_value("profile.id"), "the profile id")]  # fmt: skip
    if program_keys(session):
        found.append((_value("loyalty.referral_code"), "the member's referral code"))
    found += [(_value(f"traits.{name}"), f"the {name} trait") for name in IDENTIFIER_TRAITS if name in known]
    return found
