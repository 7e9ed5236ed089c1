"""What the template editor shows around the form: the areas with their field cards, the stores, the
uploaded images, the languages with their texts to translate, and the values a text can show."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from core.passes import library
from core.passes.contract import AREAS, IMAGE_KINDS
from core.passes.design import MAX_PLACES
from core.passes.library import POINTS
from core.passes.models import PassImage, PassTemplate
from core.profiles.service import recent
from web.campaign_pages.form import Problems
from web.pass_pages.access import wallet_labels
from web.pass_pages.bindings import barcode_identifiers, bindable_values
from web.pass_pages.colours import shown
from web.pass_pages.design_form import COLOURS, DesignForm, FieldForm, default_texts
from web.pass_pages.problems import LABELS, input_for_text, label_of
from web.pass_pages.wallet_settings import settings_sections

STYLES = {"storeCard": "Store card (loyalty)", "coupon": "Coupon", "eventTicket": "Event ticket",
          "generic": "Generic"}  # fmt: skip
AREA_HELP = {
    "header": "Top right; still visible when passes are stacked. Keep it short.",
    "primary": "The big value on the front (points, offer).",
    "secondary": "The row under the primary field.",
    "auxiliary": "The row below the secondary fields.",
    "back": "Behind the pass (the i button): terms, links, contact.",
}
ROLES = {"text": "Text", "points": "Points balance", "tier": "Tier", "member": "Member name or number"}
BARCODES = {"": "No barcode", "qr": "QR", "pdf417": "PDF417", "aztec": "Aztec", "code128": "Code 128"}
RECENT_PROFILES = 20


@dataclass(frozen=True)
class Card:
    """A field card: its position in the form, what was typed, and whether its inputs show (``open``)."""

    index: int
    field: FieldForm
    open: bool = False


@dataclass(frozen=True)
class TranslationRow:
    """One text to translate: its id, where it is in words, the default text and its translation."""

    text_id: str
    label: str
    default: str
    translated: str


def _areas(form: DesignForm, problems: Problems) -> list[dict[str, Any]]:
    """Each area with its cards; a card with problems, or still without a value, shows its inputs."""

    def card(i: int, typed: FieldForm) -> Card:
        """The card of field ``i``."""
        troubled = any(key.startswith(f"field.{i}.") for key in problems.fields)
        return Card(i, typed, troubled or not typed.value.strip())

    return [
        {"name": area, "help": AREA_HELP[area],
         "cards": [card(i, f) for i, f in enumerate(form.fields) if (f.area if f.area in AREAS else "back") == area]}
        for area in AREAS
    ]  # fmt: skip


def _label(text_id: str, form: DesignForm) -> str:
    key = input_for_text(text_id, form)
    return label_of(key, form) if key else LABELS.get(text_id, text_id)


def translation_rows(form: DesignForm) -> dict[str, list[TranslationRow]]:
    """Per translated language, every translatable text with what was typed for it."""
    texts = default_texts(form)
    return {
        language: [
            TranslationRow(tid, _label(tid, form), text, typed.get(tid, "")) for tid, text in texts.items()
        ]
        for language, typed in form.translations.items()
    }


def image_choices(session: Session) -> dict[str, list[PassImage]]:
    """The uploaded images of each kind, newest first."""
    found: dict[str, list[PassImage]] = {kind: [] for kind in IMAGE_KINDS}
    for image in library.images(session):
        found.setdefault(image.kind, []).append(image)
    return found


def image_sizes() -> dict[str, str]:
    """The size each kind of image is shown at, in words."""
    return {kind: f"{width}×{height} points" for kind, (width, height) in POINTS.items()}


def editor_view(
    session: Session, template: PassTemplate, form: DesignForm, problems: Problems, channel_label: str
) -> dict[str, Any]:
    """Everything the editor page needs besides the page layout."""
    return {
        "template": template, "form": form, "problems": problems, "channel_label": channel_label,
        "styles": STYLES, "areas": _areas(form, problems), "roles": ROLES, "barcodes": BARCODES,
        "colours": [(name, LABELS[name], shown(form.colours.get(name, "")), not form.colours.get(name))
                    for name in COLOURS],
        "stores": library.stores(session), "max_places": MAX_PLACES, "images": image_choices(session),
        "image_sizes": image_sizes(), "image_kinds": IMAGE_KINDS, "translations": translation_rows(form),
        "bindings": bindable_values(session), "identifiers": barcode_identifiers(session),
        "recent_profiles": recent(session, RECENT_PROFILES),
        "other_wallets": {key: label for key, label in wallet_labels().items() if key != template.channel},
        "wallet_settings": settings_sections(template, form, problems),
    }  # fmt: skip
