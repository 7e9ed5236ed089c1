"""Loyalty in words: an earning rule as a sentence, the program's expiry and tier settings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from core.loyalty.models import EarningRule, ExpiryPolicy, LoyaltyProgram, RuleKind, TierBasis
from web.segment_builder.options import Options
from web.segment_builder.words import describe, test_words

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")  # fmt: skip
BADGES = {"draft": "", "active": "ok", "ended": "error"}


def number(value: float | int) -> str:
    """A number as people write it (10, 2.5)."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def rule_words(rule: EarningRule, program: LoyaltyProgram) -> str:
    """What the rule earns, on which event, under which filters and caps, as one sentence."""
    points, currency = number(rule.points), program.currency
    if rule.kind == RuleKind.per_amount:
        what = f"{points} {currency} per unit of {rule.amount_property or program.amount_property}"
    elif rule.kind == RuleKind.multiplier:
        what = f"×{points} on what other rules earn"
    else:
        what = f"{points} {currency}"
    text = f"{what} on {rule.event}"
    filters = [f for f in rule.where if isinstance(f, dict)]
    if filters:
        text += " where " + " and ".join(
            test_words(str(f.get("key")), str(f.get("op")), f.get("value")) for f in filters
        )
    if rule.kind != RuleKind.multiplier:
        if not rule.tier_multiplier:
            text += ", not multiplied by tiers"
        if rule.cap_per_day:
            text += f", at most {rule.cap_per_day:,} a day"
        if rule.cap_per_month:
            text += f", at most {rule.cap_per_month:,} a month"
    return text


def profile_words(rule: EarningRule, options: Options) -> dict[str, Any] | None:
    """The rule's profile condition as nested sentences (None: every member earns)."""
    return describe(rule.profile_rule, options) if rule.profile_rule else None


def _local(moment: datetime, zone: ZoneInfo) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def period_words(rule: EarningRule, zone: ZoneInfo) -> str:
    """When the rule applies (``from … until …``), or an empty text when it has no dates."""
    parts = []
    if rule.starts_at:
        parts.append(f"from {_local(rule.starts_at, zone)}")
    if rule.ends_at:
        parts.append(f"until {_local(rule.ends_at, zone)}")
    return " ".join(parts)


def expiry_words(program: LoyaltyProgram) -> str:
    """The program's expiry policy in a sentence."""
    months = f"{program.expiry_months} month{'' if program.expiry_months == 1 else 's'}"
    if program.expiry_policy == ExpiryPolicy.rolling:
        return f"Points expire {months} after they are earned (spent oldest first)."
    if program.expiry_policy == ExpiryPolicy.fixed_date:
        month, day = (int(part) for part in program.expiry_day.split("-"))
        return (
            f"Points expire on the first {day} {MONTHS[month - 1]} at least {months} after they are earned."
        )
    return "Points never expire."


def tier_words(program: LoyaltyProgram) -> str:
    """How members qualify for tiers, in a sentence."""
    basis = (
        f"{program.currency} earned"
        if program.tier_basis == TierBasis.points
        else f"spend ({program.amount_property})"
    )
    anchor = program.period_anchor.date()
    months = program.qualifying_months
    length = "year" if months == 12 else f"{months}-month period"
    return (
        f"Members reach a tier by {basis} in each {length} counted from {anchor:%d %B %Y}; "
        "they keep it through the next period."
    )
