"""A shop with Apple Wallet enabled (the test certificate chain), a loyalty program, two customers, a
segment and an uploaded icon, with a marketer signed in: what the Wallet UI tests and the editor's
browser test start from.

Ann (French, 120 points) has every value a loyalty card shows; Bob has no first name, so a card showing
``{{ traits.first_name }}`` cannot be made for him. Tessera is reached over HTTPS (``PUBLIC_URL``), as
Apple requires of the pass web service.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import Session, col, select
from tessera_wallet_apple.testchain import chain

from core.audit.models import AuditEntry
from core.db.engines import control_session, tenant_engine
from core.ingest.service import accept
from core.loyalty.ledger import Posting, post
from core.loyalty.models import EntryKind, LoyaltyProgram
from core.passes import library
from core.passes.models import PassTemplate
from core.plugins import get_host
from core.profiles.jobs import process_events
from core.profiles.service import find_by_identifier
from core.segments.models import SegmentMembership
from core.segments.service import create_segment
from core.settings import reset_settings
from core.tenancy.members import put_member
from core.tenancy.plugin_settings import save_channel_config, set_enabled
from core.tenancy.tenants import get_tenant
from tests.support import PASSWORD, csrf_of, login

TENANT = "shop"
CHANNEL = "wallet_apple"
BASE = f"/t/{TENANT}/wallet"
PUBLIC_URL = "https://cdp.shop.example"
CUSTOMERS: dict[str, dict[str, Any]] = {
    "ann": {"first_name": "Ann", "email": "ann@example.com", "name": "Ann Martin", "locale": "fr"},
    "bob": {"email": "bob@example.com", "name": "Bob Schmidt"},
}


@dataclass
class WalletShop:
    """The tenant, a signed-in marketer's client, the customers' profile ids and a segment of Bob."""

    client: TestClient
    database: str
    people: dict[str, str]
    segment_id: int
    icon_id: int

    @property
    def csrf(self) -> str:
        """The CSRF token of the marketer's session."""
        return csrf_of(self.client, BASE)

    def session(self) -> Session:
        """A session on the tenant's database."""
        return Session(tenant_engine(self.database), expire_on_commit=False)

    def create_template(self, name: str = "Club card", key: str = "club_card") -> int:
        """A template made through the "New template" form; its id."""
        answer = self.client.post(f"{BASE}/templates/new", data={"csrf_token": self.csrf, "channel": CHANNEL,
                                                                 "name": name, "key": key}, follow_redirects=False)  # fmt: skip
        assert answer.status_code == 303, answer.text
        return int(answer.headers["location"].rsplit("/", 1)[1])

    def template(self, template_id: int) -> PassTemplate:
        """The template as stored."""
        with self.session() as session:
            found = session.get(PassTemplate, template_id)
            assert found is not None
            return found


def enable_apple_wallet(tenant_slug: str) -> None:
    """Enable Apple Wallet for the tenant (sandbox), configured with the test certificate chain."""
    with control_session() as control:
        tenant = get_tenant(control, tenant_slug)
        set_enabled(control, tenant, get_host(), CHANNEL, True, sandbox=True)
        save_channel_config(control, tenant, get_host(), CHANNEL, chain().p12_config())
        control.commit()


def png(width: int = 120, height: int = 120, colour: tuple[int, int, int] = (24, 48, 96)) -> bytes:
    """A small PNG image."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def seed_customers(database: str, tenant_slug: str = TENANT) -> dict[str, str]:
    """Ann and Bob as profiles (through ingestion), Ann with 120 points of the "club" program."""
    events = [{"type": "identify", "userId": user, "messageId": f"id-{user}", "traits": traits,
               "timestamp": datetime.now(UTC).isoformat()} for user, traits in CUSTOMERS.items()]  # fmt: skip
    with Session(tenant_engine(database), expire_on_commit=False) as session:
        assert not accept(session, tenant_slug, events).rejected
        process_events(tenant_slug, {})
        people = {user: find_by_identifier(session, "user_id", user).id for user in CUSTOMERS}
        program = LoyaltyProgram(key="club", name="Club")
        session.add(program)
        session.flush()
        posting = Posting(
            people["ann"], 120, EntryKind.adjust, key=uuid.uuid4().hex, actor="test", reason="test"
        )
        post(session, program, [posting])
        session.commit()
    return people


def open_wallet_shop(installation: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[WalletShop]:
    """The shop, its members (Mia the marketer, Ana the analyst), customers and icon; Mia signed in."""
    monkeypatch.setenv("TESSERA_PUBLIC_URL", PUBLIC_URL)
    reset_settings()
    created = installation.tenant(TENANT)
    with control_session() as control:
        tenant = get_tenant(control, TENANT)
        for email, role in (("mia@shop.test", "marketer"), ("ana@shop.test", "analyst")):
            put_member(control, tenant, email=email, role=role, password=PASSWORD, actor="test")
        control.commit()
    enable_apple_wallet(TENANT)
    people = seed_customers(created.tenant.database)
    with Session(tenant_engine(created.tenant.database), expire_on_commit=False) as session:
        segment = create_segment(session, "No first name", {"all": []}, "test", {})
        assert segment.id is not None
        session.add(SegmentMembership(segment_id=segment.id, profile_id=people["bob"]))
        icon = library.add_image(session, "icon", "icon.png", png())
        session.commit()
    assert icon.id is not None
    with installation.client() as client:
        login(client, "mia@shop.test")
        yield WalletShop(client, created.tenant.database, people, segment.id, icon.id)


def audited(action: str) -> list[AuditEntry]:
    """The audit entries of one action, oldest first."""
    with control_session() as control:
        query = select(AuditEntry).where(AuditEntry.action == action).order_by(col(AuditEntry.id))
        return list(control.exec(query))
