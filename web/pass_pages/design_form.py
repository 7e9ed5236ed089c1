"""The pass template editor's form, as typed: read from a post, or filled from a saved design.

Everything is kept as text so a refused form comes back exactly as typed. Input names:

- ``name``, ``key``, ``style``, ``organization_name``, ``description``, ``logo_text``, ``language``;
- each colour as ``foreground_color`` (a colour input) and ``foreground_color.default`` (ticked: the
  wallet's default colour);
- the fields as ``field.<i>.key|area|label|value|change_message|link|numeric|role``, in the order they
  are posted (dragging a card moves its inputs, so the page order is the pass order);
- ``barcode.format`` (blank: no barcode), ``barcode.message``, ``barcode.alt_text``; ``nfc_message``,
  ``nfc_public_key``, ``relevant_date``, ``expiration_date``;
- ``store_ids`` (ticked stores), ``beacon.<i>.proximity_uuid|major|minor|relevant_text``,
  ``images.<kind>`` (an uploaded image's id);
- ``tr_language`` (once per translated language) and ``tr.<language>.<text id>``, its translations;
- ``preview_profile`` and ``preview_language``, read by the preview only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from core.passes.contract import IMAGE_KINDS
from core.passes.design import UNTRANSLATED, PassDesign
from web.pass_pages.colours import to_hex

COLOURS = ("foreground_color", "background_color", "label_color")
FIELD_INPUT = re.compile(r"field\.(\d{1,3})\.(\w+)")
BEACON_INPUT = re.compile(r"beacon\.(\d{1,2})\.(\w+)")
TRANSLATION_INPUT = re.compile(r"tr\.([A-Za-z0-9_-]{1,20})\.(.+)")
MAX_FIELDS = 40
MAX_TYPED_BEACONS = 20

WALLET_SETTING = "ws."  # prefix of the inputs of per-wallet settings: ws.<wallet>.<setting>


@dataclass
class FieldForm:
    """One field card as typed."""

    key: str = ""
    area: str = "back"
    label: str = ""
    value: str = ""
    change_message: str = ""
    link: str = ""
    numeric: bool = False
    role: str = "text"


@dataclass
class BeaconForm:
    """One iBeacon as typed."""

    proximity_uuid: str = ""
    major: str = ""
    minor: str = ""
    relevant_text: str = ""


@dataclass
class DesignForm:
    """Everything the editor holds, as typed."""

    name: str = ""
    key: str = ""
    style: str = "storeCard"
    organization_name: str = ""
    description: str = ""
    logo_text: str = ""
    colours: dict[str, str] = field(default_factory=dict)  # by input name; blank: the wallet's default
    fields: list[FieldForm] = field(default_factory=list)
    barcode_format: str = "qr"
    barcode_message: str = "{{ wallet.serial }}"
    barcode_alt_text: str = ""
    nfc_message: str = ""
    nfc_public_key: str = ""
    relevant_date: str = ""
    expiration_date: str = ""
    store_ids: list[str] = field(default_factory=list)
    beacons: list[BeaconForm] = field(default_factory=list)
    images: dict[str, str] = field(default_factory=dict)  # by kind: an image id as typed, blank for none
    language: str = "en"
    translations: dict[str, dict[str, str]] = field(default_factory=dict)  # language -> text id -> text
    preview_profile: str = ""
    preview_language: str = ""
    other_wallets: list[str] = field(default_factory=list)  # wallets it is issued in besides its own
    wallet_settings: dict[str, dict[str, str]] = field(default_factory=dict)  # wallet -> setting -> as typed

    def field_index(self, key: str) -> int | None:
        """The position of the field with this key, if any."""
        return next((i for i, f in enumerate(self.fields) if f.key == key), None)


def _text(posted: FormData, name: str, default: str = "") -> str:
    value = posted.get(name, default)
    return value if isinstance(value, str) else default


def _in_order(
    pairs: Iterable[tuple[str, object]], pattern: re.Pattern[str], limit: int
) -> list[dict[str, str]]:
    """Inputs named ``<thing>.<i>.<part>``, grouped per ``i`` in the order the things are first posted."""
    groups: dict[str, dict[str, str]] = {}
    for name, value in pairs:
        found = pattern.fullmatch(name)
        if found is None or not isinstance(value, str):
            continue
        if found.group(1) not in groups and len(groups) >= limit:
            continue
        groups.setdefault(found.group(1), {})[found.group(2)] = value
    return list(groups.values())


def read_design_form(posted: FormData) -> DesignForm:
    """The editor as posted."""
    pairs = list(posted.multi_items())
    fields = [
        FieldForm(key=f.get("key", "").strip(), area=f.get("area", "back"), label=f.get("label", ""),
                  value=f.get("value", ""), change_message=f.get("change_message", ""), link=f.get("link", "").strip(),
                  numeric=f.get("numeric") == "on", role=f.get("role", "text"))
        for f in _in_order(pairs, FIELD_INPUT, MAX_FIELDS)
    ]  # fmt: skip
    beacons = [
        BeaconForm(b.get("proximity_uuid", "").strip(), b.get("major", "").strip(), b.get("minor", "").strip(),
                   b.get("relevant_text", ""))
        for b in _in_order(pairs, BEACON_INPUT, MAX_TYPED_BEACONS)
    ]  # fmt: skip
    languages = [
        value.strip() for value in posted.getlist("tr_language") if isinstance(value, str) and value.strip()
    ]
    translations: dict[str, dict[str, str]] = {language: {} for language in languages}
    for name, value in pairs:
        found = TRANSLATION_INPUT.fullmatch(name)
        if found and found.group(1) in translations and isinstance(value, str):
            translations[found.group(1)][found.group(2)] = value
    colours = {
        name: "" if _text(posted, f"{name}.default") == "on" else _text(posted, name) for name in COLOURS
    }
    return DesignForm(
        name=_text(posted, "name"), key=_text(posted, "key").strip(), style=_text(posted, "style", "storeCard"),
        organization_name=_text(posted, "organization_name"), description=_text(posted, "description"),
        logo_text=_text(posted, "logo_text"), colours=colours, fields=fields,
        barcode_format=_text(posted, "barcode.format"), barcode_message=_text(posted, "barcode.message"),
        barcode_alt_text=_text(posted, "barcode.alt_text"), nfc_message=_text(posted, "nfc_message"),
        nfc_public_key=_text(posted, "nfc_public_key"), relevant_date=_text(posted, "relevant_date"),
        expiration_date=_text(posted, "expiration_date"),
        store_ids=[v for v in posted.getlist("store_ids") if isinstance(v, str) and v],
        beacons=beacons, images={kind: _text(posted, f"images.{kind}") for kind in IMAGE_KINDS},
        language=_text(posted, "language", "en").strip() or "en", translations=translations,
        preview_profile=_text(posted, "preview_profile").strip(),
        preview_language=_text(posted, "preview_language").strip(),
        other_wallets=[v for v in posted.getlist("other_wallets") if isinstance(v, str) and v],
        wallet_settings=_wallet_settings(pairs),
    )  # fmt: skip


def _wallet_settings(pairs: list[tuple[str, Any]]) -> dict[str, dict[str, str]]:
    """The per-wallet settings as posted (inputs named ``ws.<wallet>.<setting>``)."""
    found: dict[str, dict[str, str]] = {}
    for name, value in pairs:
        if name.startswith(WALLET_SETTING) and isinstance(value, str):
            wallet, _, setting = name.removeprefix(WALLET_SETTING).partition(".")
            if wallet and setting:
                found.setdefault(wallet, {})[setting] = value
    return found


def form_of_design(name: str, key: str, design: PassDesign) -> DesignForm:
    """The editor filled with a saved template."""
    barcode = design.barcode
    return DesignForm(
        name=name, key=key, style=design.style, organization_name=design.organization_name,
        description=design.description, logo_text=design.logo_text or "",
        colours={colour: to_hex(getattr(design, colour)) for colour in COLOURS},
        fields=[FieldForm(f.key, f.area, f.label, f.value, f.change_message or "", f.link or "", f.numeric, f.role)
                for f in design.fields],
        barcode_format=barcode.format if barcode else "", barcode_message=barcode.message if barcode else "",
        barcode_alt_text=(barcode.alt_text or "") if barcode else "", nfc_message=design.nfc_message or "",
        nfc_public_key=design.nfc_public_key or "", relevant_date=design.relevant_date or "",
        expiration_date=design.expiration_date or "", store_ids=[str(i) for i in design.store_ids],
        beacons=[BeaconForm(b.proximity_uuid, "" if b.major is None else str(b.major),
                            "" if b.minor is None else str(b.minor), b.relevant_text or "") for b in design.beacons],
        images={kind: str(design.images[kind]) if kind in design.images else "" for kind in IMAGE_KINDS},
        language=design.language,
        translations={lang: dict(texts) for lang, texts in design.translations.items() if lang != design.language},
        wallet_settings={wallet: dict(settings) for wallet, settings in design.wallet_settings.items()},
    )  # fmt: skip


def default_texts(form: DesignForm) -> dict[str, str]:
    """Every translatable text the form holds now, by text id, in the default language.

    The same ids as :meth:`PassDesign.texts`, read from the form as typed (so the translation tabs
    can be drawn even while the form has problems).
    """
    texts = {"organization_name": form.organization_name, "description": form.description}
    if form.logo_text:
        texts["logo_text"] = form.logo_text
    for f in form.fields:
        if not f.key:
            continue
        texts[f"field.{f.key}.label"] = f.label
        texts[f"field.{f.key}.value"] = f.value
        if f.change_message:
            texts[f"field.{f.key}.change_message"] = f.change_message
        if f.link:
            texts[f"field.{f.key}.link"] = f.link
    if form.barcode_format and form.barcode_alt_text:
        texts["barcode.alt_text"] = form.barcode_alt_text
    for i, beacon in enumerate(form.beacons):
        if beacon.relevant_text:
            texts[f"beacon.{i}.relevant_text"] = beacon.relevant_text
    return {tid: text for tid, text in texts.items() if tid not in UNTRANSLATED}
