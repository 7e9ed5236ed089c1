"""Writing a small population straight into a tenant database, for tests of the rule paths."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from core.loyalty.models import (
    Challenge,
    ChallengeGoal,
    ChallengeProgress,
    LoyaltyMember,
    LoyaltyProgram,
    Tier,
)
from core.loyalty.standing import CHALLENGE, MEMBER, PROGRAM, PROGRESS, TIER
from core.segments.sql import CONSENT, EVENT, PROFILE, TRAITS

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)  # when tier periods start counting
REQUIRED: dict[type, dict[str, Any]] = {
    Challenge: {
        "event": "Order Completed",
        "goal": ChallengeGoal.distinct,
        "property": "category",
        "target": 2,
    },
    LoyaltyProgram: {"period_anchor": ANCHOR},
}


def store_people(session: Session, people: list[dict[str, Any]], now: datetime) -> None:
    """Replace the tenant's profiles, computed traits, consents, events and loyalty members with ``people``.

    A person's ``loyalty`` maps program ids to member values (balance, tier_id, qualifying, ...);
    ``challenges`` maps challenge ids to when the person completed them (None: still in progress).
    """
    connection = session.connection()
    for table in (PROFILE, EVENT, TRAITS, CONSENT, MEMBER, PROGRESS):
        connection.execute(table.delete())
    message = 0
    for person in people:
        connection.execute(PROFILE.insert().values(
            id=person["id"], traits=person["traits"], trait_times={}, display_name="",
            merged_into=person.get("merged"), created_at=now, updated_at=now,
            first_seen=person.get("seen", now), last_seen=person.get("seen", now)))  # fmt: skip
        if person["computed"]:
            connection.execute(TRAITS.insert().values(profile_id=person["id"], computed_at=now, details={},
                                                      **person["computed"]))  # fmt: skip
        for channel, granted in person["consents"].items():
            connection.execute(CONSENT.insert().values(profile_id=person["id"], channel=channel, purpose="marketing",
                                                       granted=granted, source="test", at=now))  # fmt: skip
        for event in person["events"]:
            message += 1
            connection.execute(EVENT.insert().values(
                message_id=f"m{message}", type="track", event=event["event"], properties=event["properties"],
                traits={}, context={}, integrations={}, timestamp=event["at"], received_at=now, source="test",
                status="processed", profile_id=person["id"]))  # fmt: skip
        for program_id, values in person.get("loyalty", {}).items():
            member = LoyaltyMember(program_id=program_id, profile_id=person["id"],
                                   referral_code=f"{person['id']}-{program_id}", **values)  # fmt: skip
            connection.execute(MEMBER.insert().values(**member.model_dump()))
        for challenge_id, completed_at in person.get("challenges", {}).items():
            progress = ChallengeProgress(
                challenge_id=challenge_id, profile_id=person["id"], completed_at=completed_at
            )
            connection.execute(PROGRESS.insert().values(**progress.model_dump()))


def store_programs(
    session: Session,
    programs: Sequence[dict[str, Any]],
    tiers: Sequence[dict[str, Any]] = (),
    challenges: Sequence[dict[str, Any]] = (),
) -> None:
    """Replace the tenant's loyalty programs, tiers and challenges (rows as keyword arguments)."""
    connection = session.connection()
    for table in (PROGRAM, TIER, CHALLENGE):
        connection.execute(table.delete())
    for model, table, rows in ((LoyaltyProgram, PROGRAM, programs), (Tier, TIER, tiers),
                               (Challenge, CHALLENGE, challenges)):  # fmt: skip
        for row in rows:
            values = {**REQUIRED.get(model, {}), **row}
            connection.execute(table.insert().values(**model(**values).model_dump()))
