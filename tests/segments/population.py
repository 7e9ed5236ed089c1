"""Writing a small population straight into a tenant database, for tests of the rule paths."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from core.segments.sql import CONSENT, EVENT, PROFILE, TRAITS


def store_people(session: Session, people: list[dict[str, Any]], now: datetime) -> None:
    """Replace the tenant's profiles, computed traits, consents and events with ``people``."""
    connection = session.connection()
    for table in (PROFILE, EVENT, TRAITS, CONSENT):
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
