"""A pass template's design, as marketers edit it: texts bound to profile data, in every language.

Every text (labels, values, change messages, barcode message, description...) is personalization
text (Jinja2) over the profile's ``traits``, ``computed`` traits, ``loyalty`` standing and
``wallet`` (the pass's own ``serial``). Each text has an id (``field.points.value``); translations
give, per language, the translated text of any id; an id left untranslated shows its default.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.passes.contract import BarcodeFormat, FieldArea, ImageKind, PassStyle

KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
RGB = re.compile(r"^rgb\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)$")
MAX_PLACES = 10
# Not translated: identifiers, dates and the NFC payload are the same in every language.
UNTRANSLATED = frozenset({"barcode.message", "relevant_date", "expiration_date", "nfc_message"})


def check_colour(value: str | None) -> str | None:
    """Accept ``rgb(r, g, b)`` with parts 0-255 (what pass.json takes), or nothing."""
    if value in (None, ""):
        return None
    assert value is not None
    match = RGB.match(value)
    if match is None or any(int(part) > 255 for part in match.groups()):
        raise ValueError(f"'{value}' is not a colour like rgb(255, 255, 255)")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldDesign(_Strict):
    """One field: where it shows, its label and value texts, and its lock-screen change message."""

    key: str
    area: FieldArea
    label: str = ""
    value: str
    change_message: str | None = None
    link: str | None = None
    numeric: bool = False
    role: Literal["points", "tier", "member", "text"] = "text"

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not KEY.match(value):
            raise ValueError("a field key starts with a letter and holds letters, digits and _ (max 40)")
        return value

    @field_validator("change_message")
    @classmethod
    def _change_message(cls, value: str | None) -> str | None:
        if value and "%@" not in value:
            raise ValueError("a change message must contain %@ where the new value goes")
        return value or None


class BarcodeDesign(_Strict):
    """The barcode: its format and the message, bound to an identifier (``{{ wallet.serial }}``)."""

    format: BarcodeFormat = "qr"
    message: str = "{{ wallet.serial }}"
    alt_text: str | None = None


class BeaconDesign(_Strict):
    """An iBeacon near which the pass shows."""

    proximity_uuid: str = Field(
        pattern=r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
    )
    major: int | None = Field(default=None, ge=0, le=65535)
    minor: int | None = Field(default=None, ge=0, le=65535)
    relevant_text: str | None = None


class PassDesign(_Strict):
    """Everything a pass template says and shows, in its default ``language`` plus translations."""

    style: PassStyle = "storeCard"
    organization_name: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=500)
    logo_text: str | None = None
    foreground_color: str | None = None
    background_color: str | None = None
    label_color: str | None = None
    fields: list[FieldDesign] = []
    barcode: BarcodeDesign | None = BarcodeDesign()
    nfc_message: str | None = None
    nfc_public_key: str | None = None
    relevant_date: str | None = Field(default=None, description="ISO date-time, may be personalized.")
    expiration_date: str | None = Field(default=None, description="ISO date-time, may be personalized.")
    store_ids: list[int] = Field(default=[], max_length=MAX_PLACES)
    beacons: list[BeaconDesign] = Field(default=[], max_length=MAX_PLACES)
    images: dict[ImageKind, int] = {}
    language: str = "en"
    translations: dict[str, dict[str, str]] = {}
    # Per wallet channel, its own settings where the wallets' concepts differ (Google's pass kind).
    wallet_settings: dict[str, dict[str, str]] = {}

    @field_validator("foreground_color", "background_color", "label_color")
    @classmethod
    def _colour(cls, value: str | None) -> str | None:
        return check_colour(value)

    @model_validator(mode="after")
    def _unique_keys(self) -> PassDesign:
        seen: set[str] = set()
        for field in self.fields:
            if field.key in seen:
                raise ValueError(f"two fields have the key {field.key!r}: keys must be unique")
            seen.add(field.key)
        return self

    def texts(self) -> dict[str, str]:
        """Every translatable text of the design by id, in the default language."""
        found: dict[str, str] = {"organization_name": self.organization_name, "description": self.description}
        if self.logo_text:
            found["logo_text"] = self.logo_text
        for field in self.fields:
            found[f"field.{field.key}.label"] = field.label
            found[f"field.{field.key}.value"] = field.value
            if field.change_message:
                found[f"field.{field.key}.change_message"] = field.change_message
            if field.link:
                found[f"field.{field.key}.link"] = field.link
        if self.barcode is not None:
            found["barcode.message"] = self.barcode.message
            if self.barcode.alt_text:
                found["barcode.alt_text"] = self.barcode.alt_text
        for name in ("relevant_date", "expiration_date", "nfc_message"):
            text = getattr(self, name)
            if text:
                found[name] = text
        for index, beacon in enumerate(self.beacons):
            if beacon.relevant_text:
                found[f"beacon.{index}.relevant_text"] = beacon.relevant_text
        return found

    def languages(self) -> list[str]:
        """The default language first, then every translated one."""
        return [self.language, *sorted(set(self.translations) - {self.language})]

    def variants(self) -> dict[str, dict[str, str]]:
        """Per language, every text (a translation where given, else the default text)."""
        default = self.texts()
        variants = {self.language: default}
        for language, translated in self.translations.items():
            if language != self.language:
                variants[language] = {
                    tid: (text if tid in UNTRANSLATED else translated.get(tid) or text)
                    for tid, text in default.items()
                }
        return variants
