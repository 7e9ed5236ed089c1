"""What a program's page shows: its dashboard, tiers with their members and earning rules in words."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from core.loyalty import dashboard, programs
from core.loyalty.models import LoyaltyProgram
from web.loyalty_pages.tier_form import TierForm, blank_tier_form, tier_form_of
from web.loyalty_pages.words import BADGES, expiry_words, period_words, profile_words, rule_words, tier_words
from web.segment_builder.options import Options

# The chart's series: (key, label); the per-day table adds the reversed points and the balance.
SERIES = [("issued", "Issued"), ("redeemed", "Redeemed"), ("expired", "Expired")]
DAYS = 90


def program_view(
    tenant_db: Session,
    program: LoyaltyProgram,
    zone: ZoneInfo,
    options: Options,
    editing: str = "",
    edited: TierForm | None = None,
) -> dict[str, Any]:
    """The page's variables, with the tier ``editing`` (its id, or ``new``) shown as a form.

    ``edited`` is a tier form to show again as typed, with its problems.
    """
    assert program.id is not None
    tiers = programs.list_tiers(tenant_db, program.id)
    forms = {str(tier.id): tier_form_of(tier) for tier in tiers}
    forms["new"] = blank_tier_form()
    if edited is not None:
        forms[edited.target] = edited
    by_tier = dashboard.members_by_tier(tenant_db, program.id)
    members = dict(by_tier)
    rules = [
        {"rule": rule, "words": rule_words(rule, program), "profile": profile_words(rule, options),
         "period": period_words(rule, zone), "badge": BADGES.get(rule.status.value, "")}
        for rule in programs.list_rules(tenant_db, program.id)
    ]  # fmt: skip
    return {
        "program": program, "totals": dashboard.totals(tenant_db, program.id), "by_tier": by_tier,
        "days": dashboard.points_over_time(tenant_db, program.id, zone, DAYS), "series": SERIES,
        "tiers": [(tier, members.get(tier.name, 0), forms[str(tier.id)]) for tier in tiers],
        "new_tier": forms["new"], "editing": edited.target if edited else editing, "rules": rules,
        "expiry_words": expiry_words(program), "tier_words": tier_words(program),
    }  # fmt: skip
