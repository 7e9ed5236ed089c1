"""Push tokens reach profiles three ways: an identify trait, ``context.traits``, and Segment's
``context.device.token`` (for identifier types registered ``from_device_token``, like FCM's)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from core.db.engines import control_session, tenant_engine
from core.ingest.models import Event
from core.ingest.service import accept
from core.plugins import get_host
from core.profiles.jobs import process_events
from core.profiles.service import find_by_identifier, identities_of
from core.tenancy.plugin_settings import set_enabled
from core.tenancy.tenants import get_tenant

TENANT = "app"


def _processed(installation, events: list[dict[str, Any]]) -> Session:
    database = installation.tenant(TENANT).tenant.database
    with control_session() as control:
        set_enabled(control, get_tenant(control, TENANT), get_host(), "push_fcm", True, sandbox=True)
        control.commit()
    session = Session(tenant_engine(database), expire_on_commit=False)
    result = accept(session, TENANT, events)
    assert not result.rejected, result.rejected
    process_events(TENANT, {})
    return session


def _tokens(session: Session, user_id: str) -> set[str]:
    profile = find_by_identifier(session, "user_id", user_id)
    return {i.value for i in identities_of(session, profile.id) if i.type == "fcm_token"}


def test_a_profile_gathers_every_device_token_however_it_arrives(installation) -> None:
    session = _processed(installation, [
        {"type": "identify", "userId": "ann", "traits": {"fcm_token": "phone-token"}},
        {"type": "track", "userId": "ann", "event": "App Opened", "context": {"traits": {"fcm_token": "tablet"}}},
        {"type": "screen", "userId": "ann", "name": "Home",
         "context": {"device": {"token": "watch-token", "type": "android"}}},
    ])  # fmt: skip
    assert _tokens(session, "ann") == {"phone-token", "tablet", "watch-token"}


def test_a_device_token_joins_an_anonymous_install_to_the_customer_who_logs_in(installation) -> None:
    session = _processed(installation, [
        {"type": "screen", "anonymousId": "install-1", "name": "Welcome", "context": {"device": {"token": "t-1"}}},
        {"type": "identify", "userId": "bob", "anonymousId": "install-1", "traits": {"email": "bob@example.com"}},
    ])  # fmt: skip
    assert _tokens(session, "bob") == {"t-1"}


def test_a_token_that_cannot_be_one_is_reported_on_its_event_and_the_rest_still_counts(installation) -> None:
    session = _processed(installation, [
        {"type": "identify", "userId": "cy", "traits": {"name": "Cy"},
         "context": {"device": {"token": "two words"}}},
        {"type": "identify", "userId": "dee", "context": {"device": {"token": 12345}}},
    ])  # fmt: skip
    assert _tokens(session, "cy") == set() and _tokens(session, "dee") == set()
    event = session.exec(select(Event).where(Event.user_id == "cy")).one()
    assert event.profile_id and "fcm_token" in (event.error or "")
