"""What the core hands a wallet plugin: one pass, personalized and translated, wallet-neutral.

The core owns pass templates, personalization, issued passes, device registrations and
distribution; a wallet plugin turns a :class:`RenderedPass` into its wallet's file or object,
signs it, and tells devices about changes. These models are re-exported by
:mod:`core.plugin_api`, which is where plugins import them from.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PassStyle = Literal["storeCard", "coupon", "eventTicket", "generic"]
FieldArea = Literal["header", "primary", "secondary", "auxiliary", "back"]
BarcodeFormat = Literal["qr", "pdf417", "aztec", "code128"]
ImageKind = Literal["icon", "logo", "strip", "thumbnail"]
AREAS: tuple[FieldArea, ...] = ("header", "primary", "secondary", "auxiliary", "back")
IMAGE_KINDS: tuple[ImageKind, ...] = ("icon", "logo", "strip", "thumbnail")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PassField(_Frozen):
    """One field of a pass, its texts in the pass's default language.

    ``change_message`` contains ``%@`` (the new value), as Apple requires; it is what the
    lock-screen notification says when the value changes. ``link`` makes a back field a link.
    """

    key: str
    area: FieldArea
    label: str = ""
    value: str
    change_message: str | None = None
    link: str | None = None
    # A number value (points, spend): wallets may format or show it specially (Google's loyaltyPoints).
    numeric: bool = False
    # What the field holds: "points" marks the loyalty balance a wallet can show natively.
    role: Literal["points", "tier", "member", "text"] = "text"


class PassBarcode(_Frozen):
    """The barcode on the pass; ``message`` is bound to a profile identifier."""

    format: BarcodeFormat
    message: str
    alt_text: str | None = None


class PassLocation(_Frozen):
    """A place where the pass shows on the lock screen (a store from the tenant's list)."""

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    altitude: float | None = None
    relevant_text: str | None = None


class PassBeacon(_Frozen):
    """An iBeacon near which the pass shows on the lock screen."""

    proximity_uuid: str
    major: int | None = Field(default=None, ge=0, le=65535)
    minor: int | None = Field(default=None, ge=0, le=65535)
    relevant_text: str | None = None


class RenderedPass(_Frozen):
    """One profile's pass, ready for a wallet plugin to package.

    Texts are in ``language`` (the template's default); ``translations`` maps, per other language,
    each default-language text to its translation (Apple's ``pass.strings``, Google's
    ``translatedValues``). ``images`` holds PNG bytes per kind and scale (1, 2, 3), already
    resized. ``updated_at`` is when the pass's content last changed (``Last-Modified``).
    """

    serial: str
    authentication_token: str
    web_service_url: str | None = None
    style: PassStyle
    organization_name: str
    description: str
    logo_text: str | None = None
    foreground_color: str | None = None
    background_color: str | None = None
    label_color: str | None = None
    fields: tuple[PassField, ...] = ()
    barcode: PassBarcode | None = None
    nfc_message: str | None = None
    nfc_public_key: str | None = None
    relevant_date: datetime | None = None
    expiration_date: datetime | None = None
    locations: tuple[PassLocation, ...] = ()
    beacons: tuple[PassBeacon, ...] = ()
    images: dict[ImageKind, dict[int, bytes]] = {}
    # Public addresses of the same images (@2x), for wallets that fetch images themselves (Google).
    image_urls: dict[ImageKind, str] = {}
    # The template's key: one pass class per template in wallets that have classes (Google).
    template_key: str = ""
    # The template's settings for this pass's wallet (e.g. Google's pass kind), as the editor saved them.
    wallet_settings: dict[str, str] = {}
    language: str = "en"
    translations: dict[str, dict[str, str]] = {}
    voided: bool = False
    updated_at: datetime


class PassUpdate(_Frozen):
    """A pass to put at a wallet that keeps passes itself (Google): its content and what to announce.

    ``new``: never put there before. ``announcements``: the lock-screen texts this version
    deserves (a changed field's change message, a notice), in the pass's default language.
    """

    rendered: RenderedPass
    new: bool = False
    announcements: tuple[str, ...] = ()


class PassFile(_Frozen):
    """A built pass as a file to download (a signed ``.pkpass``)."""

    content: bytes
    media_type: str
    filename: str
