"""Where a problem of a pass template belongs on the editor, and how to name that place in words.

Problems come from three places, each naming the place its own way: pydantic (``fields.0.key``),
the library (``images.logo``, ``store_ids``, ``fr.field.points.label`` for a text of one language)
and rendering (a text id such as ``field.points.value``). Each is mapped to the name of the input
it is about (``field.0.key``, ``tr.fr.field.points.label``), so it shows next to that input.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from core.passes.library import LibraryError
from core.plugin_api import Problem
from web.campaign_pages.form import Problems
from web.pass_pages.design_form import DesignForm

LABELS = {
    "name": "Name", "key": "Key", "channel": "Wallet", "style": "Style", "organization_name": "Organization name",
    "description": "Description", "logo_text": "Logo text", "foreground_color": "Text colour",
    "background_color": "Background colour", "label_color": "Label colour", "barcode.format": "Barcode format",
    "barcode.message": "Barcode message", "barcode.alt_text": "Text under the barcode", "nfc_message": "NFC message",
    "nfc_public_key": "NFC public key", "relevant_date": "Relevant date", "expiration_date": "Expiration date",
    "store_ids": "Locations", "language": "Default language", "images.icon": "Icon", "images.logo": "Logo",
    "images.strip": "Strip image", "images.thumbnail": "Thumbnail", "profile": "Profile",
}  # fmt: skip
PARTS = {"key": "key", "area": "area", "label": "label", "value": "value", "change_message": "change message",
         "link": "link", "numeric": "number", "role": "role", "proximity_uuid": "UUID", "major": "major",
         "minor": "minor", "relevant_text": "lock-screen text"}  # fmt: skip
SIMPLE_TEXTS = frozenset({"organization_name", "description", "logo_text", "relevant_date", "expiration_date",
                          "nfc_message", "barcode.message", "barcode.alt_text"})  # fmt: skip
FIELD_TEXT = re.compile(r"field\.(\w+)\.(label|value|change_message|link)")
BEACON_TEXT = re.compile(r"beacon\.(\d+)\.relevant_text")
FIELD_INPUT = re.compile(r"field\.(\d+)\.(\w+)")
BEACON_INPUT = re.compile(r"beacon\.(\d+)\.(\w+)")
TRANSLATION_INPUT = re.compile(r"tr\.([^.]+)\.(.+)")
COLLECTIONS = {"fields": "field", "beacons": "beacon"}


def input_for_location(location: Sequence[Any]) -> str | None:
    """The input a pydantic error location of :class:`PassDesign` is about (None: the whole design)."""
    parts = [str(part) for part in location]
    if not parts or parts[0] in ("design", "translations"):
        return None
    head = parts[0]
    if head in COLLECTIONS and len(parts) >= 2:
        return f"{COLLECTIONS[head]}.{parts[1]}.{parts[2] if len(parts) > 2 else 'key'}"
    if head in ("barcode", "images") and len(parts) >= 2:
        return f"{head}.{parts[1]}"
    if head == "barcode":
        return "barcode.format"
    return head


def input_for_text(text_id: str, form: DesignForm) -> str | None:
    """The input holding one text of the default language (by its text id)."""
    if text_id in SIMPLE_TEXTS:
        return text_id
    if found := FIELD_TEXT.fullmatch(text_id):
        index = form.field_index(found.group(1))
        return None if index is None else f"field.{index}.{found.group(2)}"
    if found := BEACON_TEXT.fullmatch(text_id):
        return f"beacon.{found.group(1)}.relevant_text"
    return None


def input_for(where: str, form: DesignForm) -> str | None:
    """The input a library problem's place (``key``, ``images.logo``, ``fr.field.points.label``...) is about."""
    if where in LABELS:
        return None if where == "channel" else where
    head, _, rest = where.partition(".")
    if head in ("fields", "beacons", "barcode", "images", "translations", "design"):
        return input_for_location([int(p) if p.isdigit() else p for p in where.split(".")])
    if not rest:  # about a language itself (its code)
        return "language" if head == form.language else None
    if head == form.language:
        return input_for_text(rest, form)
    if head in form.translations:
        # A language's texts fall back to the default ones: a problem there is the default text's.
        typed = form.translations[head].get(rest, "").strip()
        return f"tr.{head}.{rest}" if typed else input_for_text(rest, form)
    return None


def note(problems: Problems, key: str | None, message: str) -> None:
    """Add a problem unless the same one is already noted there."""
    if key is None and message in problems.general or key is not None and message in problems.at(key):
        return
    problems.add(key, message)


def library_problems(exc: LibraryError, form: DesignForm) -> Problems:
    """A refused template's problems, each by the input it is about."""
    problems = Problems()
    for where, what in exc.problems:
        key = input_for(where, form)
        if key is None and where:
            what = f"{where}: {what}"
        note(problems, key, what)
    return problems


def label_of(key: str, form: DesignForm) -> str:
    """An input's name in words (``Field “Points”: value``)."""
    if key in LABELS:
        return LABELS[key]
    if found := FIELD_INPUT.fullmatch(key):
        index = int(found.group(1))
        known = form.fields[index] if index < len(form.fields) else None
        name = (known.label or known.key) if known else str(index + 1)
        return f"Field “{name}”: {PARTS.get(found.group(2), found.group(2))}"
    if found := BEACON_INPUT.fullmatch(key):
        return f"iBeacon {int(found.group(1)) + 1}: {PARTS.get(found.group(2), found.group(2))}"
    if found := TRANSLATION_INPUT.fullmatch(key):
        inner = input_for_text(found.group(2), form)
        return f"{label_of(inner, form) if inner else found.group(2)} ({found.group(1)})"
    return key


def listed(problems: Problems, form: DesignForm) -> list[tuple[str, str]]:
    """Every problem as (where, in words; what), the whole form's first."""
    found = [("", message) for message in problems.general]
    found += [
        (label_of(key, form), message) for key, messages in problems.fields.items() for message in messages
    ]
    return found


def rendering_problems(problems: Sequence[Problem], form: DesignForm) -> list[tuple[str, str]]:
    """Why one profile's pass could not be made, each as (the text or place in words; what)."""
    found = []
    for problem in problems:
        key = input_for_text(problem.field, form)
        found.append(
            (label_of(key, form) if key else LABELS.get(problem.field, problem.field), problem.message)
        )
    return list(dict.fromkeys(found))
