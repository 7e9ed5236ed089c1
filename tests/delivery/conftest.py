"""A shop tenant with the recording channel enabled against a local fake provider, and helpers
to create customers and run the tenant's due jobs the way a worker would."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import Session

from core.db.engines import control_session, tenant_engine
from core.ingest.service import accept
from core.profiles.jobs import process_events
from core.profiles.service import find_by_identifier
from core.segments.service import create_segment, tenant_scope
from core.tenancy.models import Tenant
from core.tenancy.tenants import get_tenant
from tests.fakes.provider import FakeProvider
from tests.plugins_host.packages import plugin_packages, recording_plugin
from tests.support import RECORDING_CHANNEL, run_due_jobs, use_recording_channel
from tests.workers import workers

__all__ = ["plugin_packages", "recording_plugin", "workers"]

TENANT = "shop"
CHANNEL = RECORDING_CHANNEL
EVERYONE = {"type": "trait", "key": "email", "op": "is set"}


@dataclass
class Shop:
    """The tenant, its database session, and the fake provider its channel sends to."""

    database: str
    session: Session
    provider: FakeProvider
    token: str
    installation: Any

    @property
    def tenant(self) -> Tenant:
        with control_session() as control:
            return get_tenant(control, TENANT)

    def scope(self) -> Any:
        with control_session() as control:
            return tenant_scope(control, get_tenant(control, TENANT))

    def customers(self, count: int, consent: bool = True, **traits: Any) -> list[str]:
        """``count`` customers with an email (and marketing consent on the channel); their profile ids."""
        events = [
            {"type": "identify", "userId": f"c{i}", "timestamp": datetime.now(UTC).isoformat(),
             "traits": {"email": f"c{i}@example.com", "first_name": f"Ann{i}", **traits,
                        "consent": {CHANNEL: consent}}}
            for i in range(count)
        ]  # fmt: skip
        result = accept(self.session, TENANT, events)
        assert not result.rejected, result.rejected
        process_events(TENANT, {})
        self.session.expire_all()
        return [find_by_identifier(self.session, "user_id", f"c{i}").id for i in range(count)]

    def segment(self, rule: dict[str, Any] | None = None, name: str = "Everyone") -> int:
        segment = create_segment(self.session, name, rule or EVERYONE, "test", {})
        self.session.commit()
        assert segment.id is not None
        return segment.id

    def run_jobs(self) -> int:
        """Run every due job as a worker would, until none is left; how many ran."""
        ran = run_due_jobs(TENANT, self.database)
        self.session.expire_all()
        return ran


@pytest.fixture
def shop(installation, recording_plugin, provider) -> Iterator[Shop]:
    created = installation.tenant(TENANT)
    database = created.tenant.database
    use_recording_channel(TENANT, provider.url)
    with Session(tenant_engine(database), expire_on_commit=False) as session:
        yield Shop(database, session, provider, created.api_token, installation)


def content(body: str = "Hello {{ traits.first_name }}", **more: dict[str, str]) -> dict[str, Any]:
    """Campaign content in English (and more languages given as ``fr={"body": ...}``)."""
    return {"variants": {"en": {"title": "News", "body": body}, **more}, "fallback": "en"}
