"""A shop tenant with the recording channel enabled (against a local fake provider), customers,
and helpers to build journeys, send events through the real ingestion and processing, and move
time forward for the timers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, col, select

from core.db.base import utcnow
from core.db.engines import tenant_engine
from core.delivery.models import Delivery
from core.ingest.service import accept
from core.journeys import service
from core.journeys.models import Journey, JourneyEntry, JourneyVisit
from core.journeys.run import Runtime
from core.journeys.timers import advance_due
from core.profiles.jobs import process_events
from core.profiles.service import find_by_identifier
from tests.delivery.conftest import CHANNEL, TENANT, Shop
from tests.plugins_host.packages import plugin_packages, recording_plugin
from tests.support import use_recording_channel

__all__ = ["plugin_packages", "recording_plugin"]
ACTOR = "marketer@shop.test"


def _open_shop(installation: Any, provider: Any) -> Iterator[Shop]:
    created = installation.tenant(TENANT)
    use_recording_channel(TENANT, provider.url)
    with Session(tenant_engine(created.tenant.database), expire_on_commit=False) as session:
        yield Shop(created.tenant.database, session, provider, created.api_token, installation)


@pytest.fixture
def shop(installation, recording_plugin, provider) -> Iterator[Shop]:
    """The shop on SQLite and on PostgreSQL."""
    yield from _open_shop(installation, provider)


@pytest.fixture
def sqlite_shop(sqlite_installation, recording_plugin, provider) -> Iterator[Shop]:
    """The shop on SQLite only (for what does not depend on the database)."""
    yield from _open_shop(sqlite_installation, provider)


def message(body: str = "Hello {{ traits.first_name }}") -> dict[str, Any]:
    """Content for the recording channel."""
    return {"variants": {"en": {"title": "News", "body": body}}, "fallback": "en"}


def send_step(next_step: str | None = None, body: str = "Hello {{ traits.first_name }}", **more: Any) -> dict:
    return {"type": "send", "channel": CHANNEL, "content": message(body), "next": next_step, **more}


def definition(trigger: dict, steps: dict, start: str = "s1", **more: Any) -> dict[str, Any]:
    return {"trigger": trigger, "start": start, "steps": steps, **more}


def make_journey(shop: Shop, spec: dict[str, Any], name: str = "Welcome", activate: bool = True) -> Journey:
    """Save (and activate) a journey through the service, committed."""
    journey = service.create_journey(
        shop.session, shop.scope(), service.JourneyIn(name=name, definition=spec), ACTOR
    )
    if activate:
        service.activate(shop.session, shop.tenant, shop.scope(), journey, ACTOR)
    shop.session.commit()
    return journey


def track(shop: Shop, user: str, event: str, at: datetime | None = None, **properties: Any) -> None:
    """A track event of customer ``user`` (``c0``...), stored and processed for real."""
    stamp = (at or datetime.now(UTC)).isoformat()
    item = {"type": "track", "userId": user, "event": event, "properties": properties, "timestamp": stamp}
    result = accept(shop.session, TENANT, [item])
    assert not result.rejected, result.rejected
    process_events(TENANT, {})
    shop.session.expire_all()


def identify(shop: Shop, user: str, **traits: Any) -> None:
    """Set traits of customer ``user`` through an identify event, processed for real."""
    result = accept(shop.session, TENANT, [{"type": "identify", "userId": user, "traits": traits}])
    assert not result.rejected, result.rejected
    process_events(TENANT, {})
    shop.session.expire_all()


def timers(shop: Shop, after: timedelta = timedelta(0)) -> int:
    """Advance the entries due ``after`` from now (time moved forward for the timers only)."""
    advanced = advance_due(Runtime.load(TENANT), now=utcnow() + after)
    shop.session.expire_all()
    return advanced


def entries(shop: Shop, journey_id: int | None) -> list[JourneyEntry]:
    shop.session.expire_all()
    query = select(JourneyEntry).where(JourneyEntry.journey_id == journey_id).order_by(col(JourneyEntry.id))
    return list(shop.session.exec(query))


def entry_of(shop: Shop, journey_id: int | None, profile_id: str) -> JourneyEntry:
    (found,) = [e for e in entries(shop, journey_id) if e.profile_id == profile_id]
    return found


def path(shop: Shop, entry: JourneyEntry) -> list[tuple[str, str]]:
    """The (step, outcome) pairs an entry went through, in order."""
    query = select(JourneyVisit).where(JourneyVisit.entry_id == entry.id).order_by(col(JourneyVisit.id))
    return [(v.step, v.outcome) for v in shop.session.exec(query)]


def deliveries(shop: Shop, journey_id: int | None) -> list[Delivery]:
    shop.session.expire_all()
    query = select(Delivery).where(Delivery.journey_id == journey_id).order_by(col(Delivery.id))
    return list(shop.session.exec(query))


def customers(shop: Shop, *users: str, consent: bool = True, **traits: Any) -> list[str]:
    """Customers with these user ids, an email and (unless not) marketing consent; their profile ids."""
    events = [
        {"type": "identify", "userId": user, "timestamp": datetime.now(UTC).isoformat(),
         "traits": {"email": f"{user}@example.com", "first_name": user.title(), **traits,
                    "consent": {CHANNEL: consent}}}
        for user in users
    ]  # fmt: skip
    result = accept(shop.session, TENANT, events)
    assert not result.rejected, result.rejected
    process_events(TENANT, {})
    shop.session.expire_all()
    return [find_by_identifier(shop.session, "user_id", user).id for user in users]
