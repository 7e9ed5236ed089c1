"""The tier forms of the program page: one per tier (to change it) and one to add a tier."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from core.loyalty.models import Tier
from core.loyalty.programs import TierIn
from web.campaign_pages.form import FormInvalid, Problems
from web.loyalty_pages.problems import validation_problems

FIELDS = tuple(TierIn.model_fields)
NEW = "new"


@dataclass
class TierForm:
    """One tier form as typed: ``target`` is the tier's id, or ``new``; and what is wrong with it."""

    target: str
    values: dict[str, str]
    problems: Problems = field(default_factory=Problems)

    def get(self, name: str) -> str:
        """The text of one input."""
        return self.values.get(name, "")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def tier_form_of(tier: Tier) -> TierForm:
    """The form filled with a saved tier."""
    values = {"name": tier.name, "threshold": _number(tier.threshold), "multiplier": _number(tier.multiplier),
              "benefits": tier.benefits}  # fmt: skip
    return TierForm(str(tier.id), values)


def blank_tier_form() -> TierForm:
    """The form adding a tier."""
    return TierForm(NEW, {"name": "", "threshold": "", "multiplier": "1", "benefits": ""})


def read_tier_form(posted: Mapping[str, Any], target: str) -> TierForm:
    """A tier form as posted."""
    return TierForm(target, {name: str(posted.get(name) or "").strip() for name in FIELDS})


def to_tier_in(form: TierForm, tiers: Iterable[Tier]) -> TierIn:
    """The tier the form describes; :class:`FormInvalid` with each problem by its input.

    ``tiers`` are the program's: two tiers may not share a name or a threshold.
    """
    problems = Problems()
    body: TierIn | None = None
    try:
        body = TierIn.model_validate({**form.values, "multiplier": form.get("multiplier") or "1"})
    except ValidationError as exc:
        problems = validation_problems(exc)
    try:
        threshold: float | None = float(form.get("threshold"))
    except ValueError:
        threshold = None
    for tier in tiers:
        if str(tier.id) == form.target:
            continue
        if tier.name == form.get("name"):
            problems.add("name", "Another tier has this name.")
        if tier.threshold == threshold:
            problems.add("threshold", f"{tier.name} already starts at {_number(tier.threshold)}.")
    if problems or body is None:
        raise FormInvalid(problems)
    return body
