"""What the Wallet pages read: issued counts, a template's issued passes, bindable names, profiles to check.

Read-only queries for :mod:`web.routes.wallet` and its siblings; nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from core.loyalty.models import LoyaltyProgram, ProgramStatus
from core.passes.models import PassRegistration, PassState, WalletPass
from core.profiles.models import Profile
from core.profiles.service import recent
from core.segments.models import SegmentMembership

TRAIT_SAMPLE = 200  # recent profiles whose trait names are offered as bindable values
MAX_TRAITS = 200


@dataclass(frozen=True)
class IssuedRow:
    """One issued pass as the template's list shows it."""

    serial: str
    profile_id: str
    profile_name: str
    state: PassState
    issued_at: datetime
    updated_at: datetime
    devices: int


def issued_counts(session: Session) -> dict[int, int]:
    """How many passes each template has issued (any state), by template id."""
    query = select(WalletPass.template_id, func.count()).group_by(col(WalletPass.template_id))
    return {int(template_id): int(count) for template_id, count in session.exec(query)}


def issued_passes(session: Session, template_id: int, limit: int = 200) -> list[IssuedRow]:
    """A template's issued passes, most recently updated first, with the devices each is installed on."""
    query = (
        select(WalletPass, Profile.display_name)
        .join(Profile, col(Profile.id) == col(WalletPass.profile_id), isouter=True)
        .where(WalletPass.template_id == template_id)
        .order_by(col(WalletPass.updated_at).desc(), col(WalletPass.id).desc())
        .limit(limit)
    )
    found = list(session.exec(query))
    serials = [row.serial for row, _ in found]
    devices: dict[str, int] = {}
    if serials:
        counted = (
            select(PassRegistration.serial, func.count())
            .where(col(PassRegistration.serial).in_(serials))
            .group_by(col(PassRegistration.serial))
        )
        devices = {serial: int(count) for serial, count in session.exec(counted)}
    return [
        IssuedRow(row.serial, row.profile_id, name or "", row.state, row.issued_at, row.updated_at,
                  devices.get(row.serial, 0))
        for row, name in found
    ]  # fmt: skip


def trait_names(session: Session) -> list[str]:
    """Trait names seen on the most recently active profiles, sorted."""
    query = (
        select(Profile.traits)
        .where(col(Profile.merged_into).is_(None))
        .order_by(col(Profile.last_seen).desc())
        .limit(TRAIT_SAMPLE)
    )
    names: set[str] = set()
    for traits in session.exec(query):
        names.update(name for name in (traits or {}) if isinstance(name, str))
    return sorted(names)[:MAX_TRAITS]


def program_keys(session: Session) -> list[str]:
    """The keys of the active loyalty programs, oldest first (the first is also ``loyalty.<field>``)."""
    query = (
        select(LoyaltyProgram.key)
        .where(LoyaltyProgram.status == ProgramStatus.active)
        .order_by(col(LoyaltyProgram.id))
    )
    return list(session.exec(query))


def segment_profile_ids(session: Session, segment_id: int, limit: int) -> list[str]:
    """Up to ``limit`` current members of a segment, by profile id."""
    query = (
        select(SegmentMembership.profile_id)
        .where(SegmentMembership.segment_id == segment_id, col(SegmentMembership.exited_at).is_(None))
        .order_by(col(SegmentMembership.profile_id))
        .limit(limit)
    )
    return list(session.exec(query))


def recent_profile_ids(session: Session, limit: int) -> list[str]:
    """The ids of the most recently seen live profiles."""
    return [profile.id for profile in recent(session, limit)]


def profile_names(session: Session, profile_ids: list[str]) -> dict[str, str]:
    """The display names of these profiles, by id (blank names left out)."""
    if not profile_ids:
        return {}
    query = select(Profile.id, Profile.display_name).where(col(Profile.id).in_(profile_ids))
    return {pid: name for pid, name in session.exec(query) if name}


def live_holders(session: Session, template_id: int) -> list[str]:
    """The profiles holding a live pass of this template."""
    query = select(WalletPass.profile_id).where(
        WalletPass.template_id == template_id, WalletPass.state == PassState.active
    )
    return list(session.exec(query))
