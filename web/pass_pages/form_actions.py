"""Edits that change the editor's shape: a field or an iBeacon added or removed, a language added or removed.

The whole form is posted with an ``action`` (``field-add:<area>``, ``field-remove:<i>``, ``beacon-add``,
``beacon-remove:<i>``, ``language-add`` with ``new_language``, ``language-remove:<code>``) and the
editor is drawn again from the form, so nothing typed is lost.
"""

from __future__ import annotations

from babel import Locale, UnknownLocaleError

from core.passes.contract import AREAS
from core.passes.design import MAX_PLACES
from web.pass_pages.design_form import MAX_FIELDS, BeaconForm, DesignForm, FieldForm

MAX_LANGUAGES = 20


def _new_key(form: DesignForm) -> str:
    taken = {f.key for f in form.fields}
    number = len(form.fields) + 1
    while f"field{number}" in taken:
        number += 1
    return f"field{number}"


def _index(text: str, size: int) -> int | None:
    return int(text) if text.isdigit() and int(text) < size else None


def language_problem(code: str, form: DesignForm) -> str | None:
    """Why ``code`` cannot be added as a language (None: it can)."""
    if not code:
        return "Type a language code such as fr or pt_BR."
    try:
        Locale.parse(code)
    except (ValueError, UnknownLocaleError):
        return f"“{code}” is not a language code such as fr or pt_BR."
    if code == form.language or code in form.translations:
        return f"{code} is already there."
    if len(form.translations) >= MAX_LANGUAGES:
        return f"At most {MAX_LANGUAGES} languages."
    return None


def apply_action(form: DesignForm, action: str, new_language: str = "") -> str | None:
    """Apply one edit to the form; why it could not be done, if it could not (None: done)."""
    verb, _, target = action.partition(":")
    if verb == "field-add":
        if len(form.fields) >= MAX_FIELDS:
            return f"At most {MAX_FIELDS} fields."
        form.fields.append(FieldForm(key=_new_key(form), area=target if target in AREAS else "back"))
    elif verb == "field-remove" and (index := _index(target, len(form.fields))) is not None:
        del form.fields[index]
    elif verb == "beacon-add":
        if len(form.beacons) >= MAX_PLACES:
            return f"At most {MAX_PLACES} iBeacons."
        form.beacons.append(BeaconForm())
    elif verb == "beacon-remove" and (index := _index(target, len(form.beacons))) is not None:
        del form.beacons[index]
    elif verb == "language-add":
        code = new_language.strip().replace("-", "_")
        problem = language_problem(code, form)
        if problem:
            return problem
        form.translations[code] = {}
        form.preview_language = code
    elif verb == "language-remove":
        form.translations.pop(target, None)
    return None
