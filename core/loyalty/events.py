"""What loyalty tells the rest of Tessera: internal events, and plugins' ``on_profile_changed``.

Every change of a balance, tier, badge, voucher, coupon or referral appends an internal event
(journeys trigger on them; the 360 view lists them). After the change is committed, plugins that
listen (wallet passes) hear ``on_profile_changed`` with ``loyalty.balance`` / ``loyalty.tier``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from sqlmodel import Session

from core.db.base import utcnow
from core.db.engines import control_session, tenant_engine
from core.internal_events.service import emit_many
from core.loyalty.ledger import Posted
from core.loyalty.models import EntryKind, LoyaltyProgram
from core.loyalty.tiers import program_tiers
from core.passes.marking import mark_changed_now
from core.plugins import get_host
from core.profiles.snapshots import snapshot
from core.tenancy.plugin_settings import enabled_plugins
from core.tenancy.tenants import get_tenant

log = logging.getLogger(__name__)

POINTS_EARNED = "Loyalty Points Earned"
POINTS_ADJUSTED = "Loyalty Points Adjusted"
POINTS_REDEEMED = "Loyalty Points Redeemed"
POINTS_REFUNDED = "Loyalty Points Refunded"
POINTS_EXPIRED = "Loyalty Points Expired"
POINTS_REVERSED = "Loyalty Points Reversed"
TIER_CHANGED = "Loyalty Tier Changed"
REWARD_REDEEMED = "Loyalty Reward Redeemed"
VOUCHER_USED = "Loyalty Voucher Used"
BADGE_EARNED = "Loyalty Badge Earned"
OFFER_ASSIGNED = "Loyalty Offer Assigned"
OFFER_USED = "Loyalty Offer Used"
REFERRAL_QUALIFIED = "Loyalty Referral Qualified"
REFERRAL_REJECTED = "Loyalty Referral Rejected"
ALL = (
    POINTS_EARNED, POINTS_ADJUSTED, POINTS_REDEEMED, POINTS_REFUNDED, POINTS_EXPIRED, POINTS_REVERSED,
    TIER_CHANGED, REWARD_REDEEMED, VOUCHER_USED, BADGE_EARNED, OFFER_ASSIGNED, OFFER_USED, REFERRAL_QUALIFIED,
    REFERRAL_REJECTED,
)  # fmt: skip
BY_KIND = {
    EntryKind.earn: POINTS_EARNED,
    EntryKind.challenge: POINTS_EARNED,
    EntryKind.referral: POINTS_EARNED,
    EntryKind.adjust: POINTS_ADJUSTED,
    EntryKind.redeem: POINTS_REDEEMED,
    EntryKind.refund: POINTS_REFUNDED,
    EntryKind.expire: POINTS_EXPIRED,
    EntryKind.reverse: POINTS_REVERSED,
}
BALANCE, TIER = "loyalty.balance", "loyalty.tier"


def event_row(
    name: str, profile_id: str, properties: dict[str, Any], at: datetime | None = None
) -> dict[str, Any]:
    """An internal event row for :func:`emit`."""
    return {"name": name, "profile_id": profile_id, "properties": properties, "occurred_at": at or utcnow()}


def emit(session: Session, rows: Iterable[dict[str, Any]]) -> None:
    """Append the internal events (in the caller's transaction)."""
    listed = list(rows)
    if listed:
        emit_many(session, listed)


def posted_events(session: Session, program: LoyaltyProgram, posted: Posted) -> list[dict[str, Any]]:
    """The internal events for what :func:`~core.loyalty.ledger.post` recorded.

    Entries of one kind for one profile and one event (several rules earning on one purchase)
    make one event with their total.
    """
    assert program.id is not None
    grouped: dict[tuple[str, EntryKind, int | None, str], dict[str, Any]] = {}
    for entry in posted.entries:
        kind = EntryKind(entry["kind"])
        group = (
            entry["profile_id"],
            kind,
            entry["event_id"],
            entry["key"] if entry["event_id"] is None else "",
        )
        found = grouped.get(group)
        if found is None:
            grouped[group] = found = {
                "program": program.key, "program_id": program.id, "points": 0, "kind": kind.value,
                "entries": [], "at": entry["recorded_at"],
            }  # fmt: skip
            if entry["event_id"] is not None:
                found["event_id"] = entry["event_id"]
            if entry["reason"]:
                found["reason"] = entry["reason"]
        found["points"] += entry["points"]
        found["entries"].append(entry["id"])
    rows = []
    for (profile_id, kind, _, _), properties in grouped.items():
        at = properties.pop("at")
        rows.append(event_row(BY_KIND[kind], profile_id, properties, at))
    names = {tier.id: tier.name for tier in program_tiers(session, program.id)}
    for move in posted.tier_moves:
        properties = {"program": program.key, "program_id": program.id, "from": names.get(move.before) if
                      move.before else None, "to": names.get(move.after) if move.after else None}  # fmt: skip
        rows.append(event_row(TIER_CHANGED, move.profile_id, properties, move.at))
    return rows


def record(session: Session, program: LoyaltyProgram, posted: Posted) -> None:
    """Emit the internal events of what was posted."""
    emit(session, posted_events(session, program, posted))


def tell_plugins(
    tenant_slug: str,
    profile_ids: Collection[str],
    changed: list[str] | None = None,
    *,
    passes_marked: bool = False,
) -> None:
    """Tell listening plugins that these profiles' loyalty changed (after commit; never raises).

    Wallet passes showing points, tiers or coupons are marked for re-issue too, unless the caller
    already marked them in its own transaction (``passes_marked``).
    """
    if not profile_ids:
        return
    if not passes_marked:
        mark_changed_now(tenant_slug, profile_ids)
    try:
        host = get_host()
        with control_session() as control:
            tenant = get_tenant(control, tenant_slug)
            hooks = host.hooks_for(enabled_plugins(control, tenant, host))
        if not hooks.on_profile_changed.get_hookimpls():
            return
        with Session(tenant_engine(tenant.database)) as session:
            for profile_id in sorted(profile_ids):
                profile = snapshot(session, profile_id)
                if profile is not None:
                    hooks.on_profile_changed(
                        tenant=tenant_slug, profile=profile, changed=changed or [BALANCE, TIER]
                    )
    except Exception:  # a plugin's failure must not undo or stop loyalty
        log.exception("on_profile_changed (loyalty) failed for %s", tenant_slug)
