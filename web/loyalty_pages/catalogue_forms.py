"""The catalogue forms of a loyalty program: a reward, a challenge or an offer, as typed and as read.

Each form is kept as typed (text by input name) so that a refused one comes back as it was, with
each problem next to its input. Times are typed in the tenant's time zone and read as UTC; a
challenge's property filters are rows written and read as the audience builder does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from fastapi import Request
from pydantic import BaseModel, ValidationError

from core.loyalty import challenges, offers, rewards
from core.loyalty.ledger import LoyaltyError
from core.loyalty.models import Challenge, ChallengeGoal, Offer, Reward, RewardStatus
from core.segments.rules import KIND_OPS, Kind
from web.campaign_pages.form import Problems
from web.segment_builder.values import shape, shown, typed
from web.segment_builder.view import OP_LABELS

M = TypeVar("M", bound=BaseModel)
Typed = dict[str, str]  # a form as typed, by input name

FILTER_OPS = [(str(op), OP_LABELS.get(str(op), str(op))) for op in KIND_OPS[Kind.json]]
BLANK_FILTERS = 2  # empty property-filter rows the challenge form offers for more filters


# --- shared ------------------------------------------------------------------------------------------
async def read_typed(request: Request) -> Typed:
    """The posted form as typed: its text inputs by name."""
    posted = await request.form()
    return {key: value for key, value in posted.items() if isinstance(value, str)}


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _number(form: Typed, name: str, problems: Problems, *, required: bool = False) -> int | None:
    text = form.get(name, "").strip()
    if not text:
        if required:
            problems.add(name, "Required.")
        return None
    try:
        return int(text)
    except ValueError:
        problems.add(name, "A whole number, please.")
        return None


def _moment(form: Typed, name: str, problems: Problems, zone: str) -> datetime | None:
    """A ``datetime-local`` input, read in the tenant's zone, as UTC."""
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        local = datetime.fromisoformat(text)
    except ValueError:
        problems.add(name, "A date and time, please (YYYY-MM-DD HH:MM).")
        return None
    return (local if local.tzinfo else local.replace(tzinfo=ZoneInfo(zone))).astimezone(UTC)


def local_input(moment: datetime | None, zone: str) -> str:
    """What a ``datetime-local`` input shows for a stored instant, in the tenant's zone."""
    if moment is None:
        return ""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M")


def _message(error: Any) -> str:
    """A pydantic error in the words of the form."""
    context = error.get("ctx") or {}
    words = {
        "greater_than": f"More than {context.get('gt')}, please.",
        "greater_than_equal": f"At least {context.get('ge')}, please.",
        "less_than_equal": f"At most {context.get('le')}, please.",
        "string_too_short": "Required.",
        "string_too_long": f"At most {context.get('max_length')} characters.",
        "string_pattern_mismatch": "Letters and digits only.",
    }
    return words.get(error.get("type", "")) or str(error.get("msg", "Not valid.")).removeprefix(
        "Value error, "
    )


def _validated(model: type[M], values: dict[str, Any], problems: Problems) -> M | None:
    """The model, or None with its problems noted by input (an input already faulted keeps its own)."""
    try:
        body = model(**values)
    except ValidationError as exc:
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else None
            if key is None or not problems.at(key):
                problems.add(key, _message(error))
        return None
    return None if problems else body


def refused(problems: Problems, exc: LoyaltyError) -> None:
    """Note why saving was refused: next to the name if it is taken, for the whole form otherwise."""
    problems.add("name" if isinstance(exc, rewards.NameTaken) else None, str(exc))


# --- rewards -------------------------------------------------------------------------------------------
def reward_form(reward: Reward, zone: str) -> Typed:
    """The reward form filled with a saved reward."""
    return {"name": reward.name, "description": reward.description, "cost": str(reward.cost),
            "stock": _text(reward.stock), "per_profile_limit": _text(reward.per_profile_limit),
            "min_tier_id": _text(reward.min_tier_id), "valid_from": local_input(reward.valid_from, zone),
            "valid_until": local_input(reward.valid_until, zone),
            "voucher_days": _text(reward.voucher_days)}  # fmt: skip


def reward_in(form: Typed, zone: str, status: RewardStatus, problems: Problems) -> rewards.RewardIn | None:
    """The reward the form describes (None: ``problems`` says what is wrong)."""
    values = {
        "name": form.get("name", "").strip(), "description": form.get("description", "").strip(),
        "cost": _number(form, "cost", problems, required=True), "stock": _number(form, "stock", problems),
        "per_profile_limit": _number(form, "per_profile_limit", problems),
        "min_tier_id": _number(form, "min_tier_id", problems),
        "valid_from": _moment(form, "valid_from", problems, zone),
        "valid_until": _moment(form, "valid_until", problems, zone),
        "voucher_days": _number(form, "voucher_days", problems), "status": status,
    }  # fmt: skip
    return _validated(rewards.RewardIn, values, problems)


# --- challenges ----------------------------------------------------------------------------------------
def _value_text(op: str, value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(shown(v) for v in value)
    return _text(value) if shape(op) == "text" else shown(value)


def filter_rows(where: list[dict[str, Any]]) -> list[Typed]:
    """Property filters as the form's rows (key, operator, value as typed), then blank rows for more."""
    rows = [{"key": _text(f.get("key")), "op": _text(f.get("op")),
             "value": _value_text(_text(f.get("op")), f.get("value"))} for f in where]  # fmt: skip
    return rows + [{"key": "", "op": "=", "value": ""} for _ in range(BLANK_FILTERS)]


def typed_rows(form: Typed) -> list[Typed]:
    """The filter rows as typed (``where.<i>.key``, ``.op``, ``.value``), blank ones left out."""
    indexes = sorted(
        {int(k.split(".")[1]) for k in form if k.startswith("where.") and k.split(".")[1].isdigit()}
    )
    rows = [
        {name: form.get(f"where.{i}.{name}", "").strip() for name in ("key", "op", "value")} for i in indexes
    ]
    return [row for row in rows if row["key"]]


def read_filters(form: Typed) -> list[dict[str, Any]]:
    """The typed filter rows as the segment rule language writes property filters.

    A list (``is one of``) or a pair (``between``) is typed comma-separated; values are read as in
    the audience builder (``42`` a number, ``"42"`` text).
    """
    where = []
    for row in typed_rows(form):
        kind = shape(row["op"])
        item: dict[str, Any] = {"key": row["key"], "op": row["op"]}
        if kind in ("pair", "list"):
            item["value"] = [typed(part) for part in row["value"].split(",") if part.strip()]
        elif kind == "text":
            item["value"] = row["value"]
        elif kind != "none":
            item["value"] = typed(row["value"])
        where.append(item)
    return where


def challenge_form(challenge: Challenge, zone: str) -> Typed:
    """The challenge form filled with a saved challenge (its filters are :func:`filter_rows`)."""
    return {"name": challenge.name, "description": challenge.description, "badge": challenge.badge,
            "event": challenge.event, "goal": challenge.goal.value, "property": _text(challenge.property),
            "target": str(challenge.target), "window_days": _text(challenge.window_days),
            "points": str(challenge.points), "starts_at": local_input(challenge.starts_at, zone),
            "ends_at": local_input(challenge.ends_at, zone)}  # fmt: skip


def challenge_in(form: Typed, zone: str, problems: Problems) -> challenges.ChallengeIn | None:
    """The challenge the form describes (None: ``problems`` says what is wrong)."""
    goal = form.get("goal", ChallengeGoal.events.value)
    counted = form.get("property", "").strip() or None
    values = {
        "name": form.get("name", "").strip(), "description": form.get("description", "").strip(),
        "badge": form.get("badge", "").strip(), "event": form.get("event", "").strip(), "goal": goal,
        "property": counted if goal == ChallengeGoal.distinct.value else None,
        "target": _number(form, "target", problems, required=True),
        "window_days": _number(form, "window_days", problems),
        "points": _number(form, "points", problems) or 0,
        "starts_at": _moment(form, "starts_at", problems, zone),
        "ends_at": _moment(form, "ends_at", problems, zone), "where": read_filters(form),
    }  # fmt: skip
    return _validated(challenges.ChallengeIn, values, problems)


# --- offers --------------------------------------------------------------------------------------------
def offer_form(offer: Offer, zone: str) -> Typed:
    """The offer form filled with a saved offer."""
    return {"name": offer.name, "description": offer.description, "value": offer.value,
            "code_prefix": offer.code_prefix, "max_uses": str(offer.max_uses),
            "valid_from": local_input(offer.valid_from, zone),
            "valid_until": local_input(offer.valid_until, zone), "valid_days": _text(offer.valid_days),
            "tenant_wide": "on" if offer.program_id is None else ""}  # fmt: skip


def offer_in(form: Typed, zone: str, program_id: int, problems: Problems) -> offers.OfferIn | None:
    """The offer the form describes (None: ``problems`` says what is wrong)."""
    values = {
        "name": form.get("name", "").strip(), "description": form.get("description", "").strip(),
        "value": form.get("value", "").strip(), "code_prefix": form.get("code_prefix", "").strip(),
        "max_uses": _number(form, "max_uses", problems, required=True),
        "valid_from": _moment(form, "valid_from", problems, zone),
        "valid_until": _moment(form, "valid_until", problems, zone),
        "valid_days": _number(form, "valid_days", problems),
        "program_id": None if form.get("tenant_wide") == "on" else program_id,
    }  # fmt: skip
    return _validated(offers.OfferIn, values, problems)
