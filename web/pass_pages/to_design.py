"""The editor's form as a pass design: the one conversion both the live preview and saving use.

Colours come from colour inputs (``#1a2b3c``) and become ``rgb(26, 43, 60)``; numbers are read;
blank optional texts are left out; translations keep only the texts the design still has. What
cannot be read, and what :class:`PassDesign` refuses, is reported by input (:class:`FormInvalid`).
Checks that need the tenant's data (images, stores, personalization) are the library's.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from core.passes.design import MAX_PLACES, UNTRANSLATED, PassDesign
from web.campaign_pages.form import FormInvalid, Problems
from web.pass_pages.colours import NotAColour, to_rgb
from web.pass_pages.design_form import COLOURS, BeaconForm, DesignForm, FieldForm
from web.pass_pages.problems import input_for_location, note

MESSAGES = {
    "string_too_short": "Required.",
    "missing": "Required.",
    "literal_error": "Pick one of the choices.",
    "string_pattern_mismatch": "Not valid here.",
    "too_long": f"At most {MAX_PLACES}.",
}


def _words(error: Any) -> str:
    context = error.get("ctx") or {}
    if error.get("type") == "string_too_long":
        return f"At most {context.get('max_length')} characters."
    if error.get("type") == "string_pattern_mismatch" and error.get("loc", ())[-1:] == ("proximity_uuid",):
        return "A UUID like E2C56DB5-DFFB-48D2-B060-D0F5A71096E0."
    return MESSAGES.get(error.get("type", "")) or str(error.get("msg", "Not valid.")).removeprefix(
        "Value error, "
    )


def _optional(text: str) -> str | None:
    return text.strip() or None


def _number(text: str, key: str, problems: Problems) -> int | None:
    if not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        problems.add(key, "A whole number, please (0 to 65535).")
        return None


def _field(i: int, typed: FieldForm, problems: Problems) -> dict[str, Any]:
    if not typed.value.strip():
        problems.add(f"field.{i}.value", "A field needs a value: type it, or pick a value to show.")
    if not typed.key:
        problems.add(f"field.{i}.key", "Required.")
    return {"key": typed.key, "area": typed.area, "label": typed.label, "value": typed.value,
            "change_message": _optional(typed.change_message), "link": _optional(typed.link),
            "numeric": typed.numeric, "role": typed.role}  # fmt: skip


def _beacon(i: int, typed: BeaconForm, problems: Problems) -> dict[str, Any]:
    return {"proximity_uuid": typed.proximity_uuid, "major": _number(typed.major, f"beacon.{i}.major", problems),
            "minor": _number(typed.minor, f"beacon.{i}.minor", problems),
            "relevant_text": _optional(typed.relevant_text)}  # fmt: skip


def _raw(form: DesignForm, problems: Problems) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "style": form.style, "organization_name": form.organization_name.strip(),
        "description": form.description.strip(), "logo_text": _optional(form.logo_text),
        "fields": [_field(i, f, problems) for i, f in enumerate(form.fields)],
        "nfc_message": _optional(form.nfc_message), "nfc_public_key": _optional(form.nfc_public_key),
        "relevant_date": _optional(form.relevant_date), "expiration_date": _optional(form.expiration_date),
        "beacons": [_beacon(i, b, problems) for i, b in enumerate(form.beacons)],
        "language": form.language.strip() or "en",
    }  # fmt: skip
    for name in COLOURS:
        try:
            raw[name] = to_rgb(form.colours.get(name, ""))
        except NotAColour as exc:
            problems.add(name, str(exc))
    raw["barcode"] = None
    if form.barcode_format:
        if not form.barcode_message.strip():
            problems.add("barcode.message", "The barcode needs a message: pick the identifier it holds.")
        raw["barcode"] = {"format": form.barcode_format, "message": form.barcode_message.strip(),
                          "alt_text": _optional(form.barcode_alt_text)}  # fmt: skip
    stores = [int(s) for s in form.store_ids if s.isdigit()]
    if len(stores) > MAX_PLACES:
        problems.add("store_ids", f"At most {MAX_PLACES} locations: untick {len(stores) - MAX_PLACES}.")
    raw["store_ids"] = stores
    if len(form.beacons) > MAX_PLACES:
        problems.add(None, f"At most {MAX_PLACES} iBeacons: remove {len(form.beacons) - MAX_PLACES}.")
    images: dict[str, int] = {}
    for kind, typed in form.images.items():
        if typed.strip().isdigit():
            images[kind] = int(typed)
        elif typed.strip():
            problems.add(f"images.{kind}", "Pick an uploaded image.")
    raw["images"] = images
    return raw


def design_of(form: DesignForm) -> PassDesign:
    """The design the form describes; :class:`FormInvalid` with each problem by its input."""
    problems = Problems()
    raw = _raw(form, problems)
    design: PassDesign | None = None
    try:
        design = PassDesign.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            key = input_for_location(error["loc"])
            if key is None or not problems.at(key):
                note(problems, key, _words(error))
    if problems or design is None:
        raise FormInvalid(problems)
    kept = set(design.texts()) - UNTRANSLATED
    translations = {
        language: {tid: text for tid, text in typed.items() if tid in kept and text.strip()}
        for language, typed in form.translations.items()
        if language != design.language
    }
    return design.model_copy(update={"translations": translations})
