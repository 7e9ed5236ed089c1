"""The form adding a store to the tenant's list, as typed and as read."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session

from core.passes import library
from core.passes.library import LibraryError
from core.passes.models import Store
from web.campaign_pages.form import Problems

FIELDS = ("name", "address", "latitude", "longitude", "relevant_text")
LENGTHS = {"name": 200, "address": 500, "relevant_text": 200}


@dataclass
class StoreForm:
    """The store form as typed, and what is wrong with it."""

    values: dict[str, str] = field(default_factory=dict)
    problems: Problems = field(default_factory=Problems)

    def get(self, name: str) -> str:
        """The text of one input."""
        return self.values.get(name, "")


def read_store_form(posted: dict[str, str]) -> StoreForm:
    """The store form as posted."""
    return StoreForm({name: posted.get(name, "").strip() for name in FIELDS})


def _degrees(form: StoreForm, name: str, limit: int) -> float | None:
    text = form.get(name).replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        form.problems.add(name, f"A number of degrees, -{limit} to {limit} (e.g. 48.8566).")
        return None
    if not -limit <= value <= limit:
        form.problems.add(name, f"Between -{limit} and {limit}.")
        return None
    return value


def save_store(session: Session, form: StoreForm) -> Store | None:
    """Add the store the form describes (None: ``form.problems`` says why not)."""
    latitude, longitude = _degrees(form, "latitude", 90), _degrees(form, "longitude", 180)
    if not form.get("name"):
        form.problems.add("name", "Required.")
    for name, longest in LENGTHS.items():
        if len(form.get(name)) > longest:
            form.problems.add(name, f"At most {longest} characters.")
    if form.problems or latitude is None or longitude is None:
        return None
    try:
        return library.add_store(session, form.get("name"), latitude, longitude, form.get("address"),
                                 form.get("relevant_text"))  # fmt: skip
    except LibraryError as exc:
        for where, what in exc.problems:
            form.problems.add(where if where in FIELDS else None, str(exc) if where else what)
        return None
