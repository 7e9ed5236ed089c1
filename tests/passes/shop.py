"""A shop tenant with Apple Wallet enabled (test certificate chain), a loyalty program, and a
loyalty-card template bound to the points balance; helpers to add customers and read passes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import Session, col, select
from tessera_wallet_apple.testchain import chain, sample_png

from core.db.engines import control_session, tenant_engine
from core.ingest.service import accept
from core.loyalty.ledger import Posting, post
from core.loyalty.models import EntryKind, LoyaltyProgram
from core.passes import library
from core.passes.models import PassActivity, PassRegistration, PassTemplate, WalletPass
from core.plugins import get_host
from core.profiles.jobs import process_events
from core.profiles.service import find_by_identifier
from core.tenancy.plugin_settings import save_channel_config, set_enabled
from core.tenancy.tenants import get_tenant
from tests.support import run_due_jobs

TENANT = "shop"
CHANNEL = "wallet_apple"
CARD: dict[str, Any] = {
    "style": "storeCard", "organization_name": "Tessera Shop", "description": "Tessera Club card",
    "background_color": "rgb(24, 48, 96)", "foreground_color": "rgb(255, 255, 255)",
    "fields": [
        {"key": "points", "area": "primary", "label": "Points", "value": "{{ loyalty.balance }}",
         "change_message": "You now have %@ points", "numeric": True, "role": "points"},
        {"key": "name", "area": "secondary", "label": "Member", "value": "{{ traits.first_name }}"},
        {"key": "terms", "area": "back", "label": "Terms", "value": "Points never expire",
         "link": "https://shop.example/terms"},
    ],
    "barcode": {"format": "qr", "message": "{{ wallet.serial }}"},
    "translations": {"fr": {"field.points.label": "Points fidélité", "field.name.label": "Membre"}},
}  # fmt: skip


@dataclass
class Shop:
    """The tenant, a session on its database, its program and its loyalty-card template."""

    installation: Any
    database: str
    session: Session
    program: LoyaltyProgram
    template: PassTemplate
    token: str

    def customer(self, user: str, **traits: Any) -> str:
        """A profile made by an identify call (processed); its id."""
        body = {"type": "identify", "userId": user, "traits": {"first_name": user.title(), **traits},
                "timestamp": datetime.now(UTC).isoformat(), "messageId": uuid.uuid4().hex}  # fmt: skip
        assert not accept(self.session, TENANT, [body]).rejected
        process_events(TENANT, {})
        self.session.expire_all()
        return find_by_identifier(self.session, "user_id", user).id

    def give(self, profile_id: str, points: int, key: str | None = None) -> None:
        """Points by adjustment (committed), as loyalty would post them."""
        posting = Posting(profile_id, points, EntryKind.adjust, key=key or uuid.uuid4().hex, actor="test",
                          reason="test")  # fmt: skip
        post(self.session, self.program, [posting])
        self.session.commit()

    def run_jobs(self) -> int:
        """Run the due jobs as a worker would."""
        ran = run_due_jobs(TENANT, self.database)
        self.session.expire_all()
        return ran

    def pass_of(self, profile_id: str) -> WalletPass | None:
        """The profile's pass of the loyalty-card template."""
        self.session.expire_all()
        query = select(WalletPass).where(
            WalletPass.template_id == self.template.id, WalletPass.profile_id == profile_id
        )
        return self.session.exec(query).first()

    def registrations(self) -> list[str]:
        """The push tokens of every device registration, by id."""
        self.session.expire_all()
        query = select(PassRegistration.push_token).order_by(col(PassRegistration.id))
        return list(self.session.exec(query))

    def activity(self, serial: str) -> list[str]:
        """What happened to a pass, oldest first."""
        query = select(PassActivity.kind).where(PassActivity.serial == serial).order_by(col(PassActivity.id))
        return [str(kind) for kind in self.session.exec(query)]


def configure_wallet(sandbox: bool = True, **config: str) -> None:
    """Enable Apple Wallet for the shop with the test certificate chain."""
    with control_session() as control:
        tenant = get_tenant(control, TENANT)
        set_enabled(control, tenant, get_host(), CHANNEL, True, sandbox=sandbox)
        save_channel_config(control, tenant, get_host(), CHANNEL, {**chain().p12_config(), **config})
        control.commit()


def open_shop(installation: Any) -> Iterator[Shop]:
    """Create the tenant, its program, the wallet config and the loyalty-card template."""
    created = installation.tenant(TENANT)
    configure_wallet()
    with Session(tenant_engine(created.tenant.database), expire_on_commit=False) as session:
        program = LoyaltyProgram(key="club", name="Club")
        session.add(program)
        icon = library.add_image(session, "icon", "icon.png", sample_png(120, 120))
        template = library.save_template(session, key="club_card", name="Club card", channel=CHANNEL,
                                         design={**CARD, "images": {"icon": icon.id}}, by="test")  # fmt: skip
        session.commit()
        yield Shop(installation, created.tenant.database, session, program, template, created.api_token)


@pytest.fixture
def shop(installation: Any) -> Iterator[Shop]:
    """The shop on SQLite and on PostgreSQL."""
    yield from open_shop(installation)


@pytest.fixture
def sqlite_shop(sqlite_installation: Any) -> Iterator[Shop]:
    """The shop on SQLite only."""
    yield from open_shop(sqlite_installation)


@pytest.fixture
def postgres_shop(postgres_installation: Any) -> Iterator[Shop]:
    """The shop on PostgreSQL only (concurrent transactions)."""
    yield from open_shop(postgres_installation)
