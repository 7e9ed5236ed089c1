"""The program settings form: every field of :class:`~core.loyalty.programs.ProgramIn` as text.

Refund events are typed one per line. The key cannot change once the program exists (templates
and passes use it), so the edit form shows it read-only and the saved key is what counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from core.loyalty.models import LoyaltyProgram
from core.loyalty.programs import ProgramIn
from web.campaign_pages.form import FormInvalid, Problems
from web.loyalty_pages.problems import validation_problems

FIELDS = tuple(ProgramIn.model_fields)


@dataclass
class ProgramForm:
    """What the settings form shows (as typed) and what is wrong with it."""

    values: dict[str, str]
    problems: Problems = field(default_factory=Problems)

    def get(self, name: str) -> str:
        """The text of one input."""
        return self.values.get(name, "")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "\n".join(str(item) for item in value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(getattr(value, "value", value))


def blank_form() -> ProgramForm:
    """The form of a new program, filled with the defaults."""
    values = {}
    for name, info in ProgramIn.model_fields.items():
        values[name] = "" if info.is_required() else _text(info.get_default(call_default_factory=True))
    return ProgramForm(values)


def form_of(program: LoyaltyProgram) -> ProgramForm:
    """The form filled with a saved program."""
    values = {name: _text(getattr(program, name)) for name in FIELDS}
    values["period_anchor"] = program.period_anchor.date().isoformat()
    return ProgramForm(values)


def read_form(posted: Mapping[str, Any], key: str | None = None) -> ProgramForm:
    """The form as posted; ``key`` is the saved program's (its input cannot change it)."""
    values = {name: str(posted.get(name) or "").strip() for name in FIELDS}
    if key is not None:
        values["key"] = key
    return ProgramForm(values)


def to_program_in(
    form: ProgramForm, programs: Iterable[LoyaltyProgram], program_id: int | None = None
) -> ProgramIn:
    """The settings the form describes; :class:`FormInvalid` with each problem by its input.

    ``programs`` are the tenant's programs: another one's key or name is taken.
    """
    data: dict[str, Any] = dict(form.values)
    data["brand"] = data["brand"] or None
    data["refund_events"] = [line.strip() for line in data["refund_events"].splitlines() if line.strip()]
    problems = Problems()
    body: ProgramIn | None = None
    try:
        body = ProgramIn.model_validate(data)
    except ValidationError as exc:
        problems = validation_problems(exc, model_wide="expiry_months")
    for other in programs:
        if other.id == program_id:
            continue
        if other.key == data["key"]:
            problems.add("key", f"The program {other.name!r} already has this key.")
        if other.name == data["name"]:
            problems.add("name", "Another program has this name.")
    if problems or body is None:
        raise FormInvalid(problems)
    return body
