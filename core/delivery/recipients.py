"""What sending needs to know of many profiles at once: address, consent, zone, history, content data.

Everything is read in a few set queries per chunk of profiles, never one query per profile: a
campaign plans 100,000 recipients this way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.consent.models import Consent
from core.db.base import as_utc, utcnow
from core.db.bulk import select_in
from core.delivery.models import Delivery
from core.ingest.models import Event
from core.loyalty.offers import coupon_fields
from core.loyalty.standing import loyalty_namespace, standings
from core.messages.personalization import message_context
from core.messages.policy import Recipient
from core.passes.links import landing_url
from core.passes.models import PassTemplate
from core.profiles.models import Identity, Profile
from core.traits.models import ComputedTraits

PROFILE = Profile.__table__  # type: ignore[attr-defined]
IDENTITY = Identity.__table__  # type: ignore[attr-defined]
CONSENT = Consent.__table__  # type: ignore[attr-defined]
COMPUTED = ComputedTraits.__table__  # type: ignore[attr-defined]
DELIVERY = Delivery.__table__  # type: ignore[attr-defined]
PASS_TEMPLATE = PassTemplate.__table__  # type: ignore[attr-defined]
EVENT = Event.__table__  # type: ignore[attr-defined]
# Customer-service windows last a day; a week of history answers every question about them.
INBOUND_LOOKBACK = timedelta(days=7)
COMPUTED_FIELDS = ("orders", "revenue", "first_order_at", "last_order_at", "days_since_last_order",
                   "rfm_recency", "rfm_frequency", "rfm_monetary", "rfm_segment", "churn_risk",
                   "expected_purchases_30", "expected_purchases_90", "predicted_clv")  # fmt: skip


@dataclass
class RecipientData:
    """One profile as a send sees it."""

    profile_id: str
    name: str
    traits: dict[str, Any]
    address: str | None = None
    addresses: list[str] = field(default_factory=list)  # every live one of the channel's type, address first
    last_inbound_at: datetime | None = None  # when they last wrote to the business on this channel
    consented: bool = False
    computed: dict[str, Any] = field(default_factory=dict)
    loyalty: dict[str, Any] = field(default_factory=dict)  # the ``loyalty`` template namespace
    wallet: dict[str, str] = field(default_factory=dict)  # add-to-wallet links by pass template key
    sent: list[tuple[str, datetime]] = field(default_factory=list)

    @property
    def locale(self) -> str | None:
        """The profile's ``locale`` trait, if it is text."""
        value = self.traits.get("locale")
        return value if isinstance(value, str) else None

    @property
    def timezone(self) -> str | None:
        """The profile's ``timezone`` trait, if it is text."""
        value = self.traits.get("timezone")
        return value if isinstance(value, str) else None

    def recipient(self) -> Recipient:
        """The policy's view of this profile."""
        return Recipient(self.consented, self.address, self.timezone, tuple(self.sent))

    def context(self, event: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What a message template reads for this profile (and the event that triggered the send)."""
        return message_context(
            self.traits,
            self.computed,
            self.loyalty,
            event,
            {"id": self.profile_id, "name": self.name},
            self.wallet,
        )


def load_recipients(
    connection: Connection,
    profile_ids: Collection[str],
    channel: str,
    address_type: str | None,
    history_since: datetime | None = None,
    tenant: str | None = None,
    inbound_event: str | None = None,
) -> dict[str, RecipientData]:
    """The live (not merged-away) profiles among ``profile_ids``, by id, ready for ``channel``.

    Without an ``address_type`` the channel addresses profiles by their id; retired addresses
    (gone, says the provider) are never used. ``history_since`` loads the messages sent to them
    since then (for frequency caps). With ``tenant``, each gets its signed add-to-wallet link per
    pass template (the ``wallet`` namespace of messages). With ``inbound_event`` (the channel's
    event for customers' own messages), each gets when they last wrote, within a week.
    """
    found: dict[str, RecipientData] = {}
    profiles = sa.select(PROFILE.c.id, PROFILE.c.display_name, PROFILE.c.traits).where(
        PROFILE.c.merged_into.is_(None)
    )
    for pid, name, traits in select_in(connection, profiles, PROFILE.c.id, profile_ids, pg_type="text"):
        found[pid] = RecipientData(pid, name or "", dict(traits or {}))
        if address_type is None:
            found[pid].address = pid
    ids = list(found)
    if address_type is not None:
        # The earliest live identifier of the type is the profile's address on the channel: stable.
        identities = sa.select(IDENTITY.c.profile_id, IDENTITY.c.value).where(
            IDENTITY.c.type == address_type, IDENTITY.c.retired_at.is_(None)
        )
        identities = identities.order_by(IDENTITY.c.first_seen, IDENTITY.c.value)
        for pid, value in select_in(connection, identities, IDENTITY.c.profile_id, ids, pg_type="text"):
            found[pid].addresses.append(value)
        for person in found.values():
            person.address = person.addresses[0] if person.addresses else None
    if inbound_event is not None and ids:
        for pid, at in last_events(connection, ids, inbound_event, utcnow() - INBOUND_LOOKBACK).items():
            found[pid].last_inbound_at = at
    consents = sa.select(CONSENT.c.profile_id, CONSENT.c.granted).where(
        CONSENT.c.channel == channel, CONSENT.c.purpose == "marketing"
    )
    for pid, granted in select_in(connection, consents, CONSENT.c.profile_id, ids, pg_type="text"):
        found[pid].consented = bool(granted)
    computed = sa.select(COMPUTED.c.profile_id, *(COMPUTED.c[name] for name in COMPUTED_FIELDS))
    for row in select_in(connection, computed, COMPUTED.c.profile_id, ids, pg_type="text"):
        found[row[0]].computed = dict(zip(COMPUTED_FIELDS, row[1:], strict=True))
    for pid, held in standings(connection, ids).items():
        found[pid].loyalty = loyalty_namespace(held)
    for pid, coupons in coupon_fields(connection, ids).items():
        if coupons:  # usable coupons, soonest to expire first: {{ loyalty.coupons[0].code }}
            found[pid].loyalty["coupons"] = coupons
    if history_since is not None:
        for pid, sent in sent_history(connection, ids, history_since).items():
            found[pid].sent = sent
    if tenant is not None and found:
        templates = connection.execute(
            sa.select(PASS_TEMPLATE.c.id, PASS_TEMPLATE.c.key).where(PASS_TEMPLATE.c.archived.is_(False))
        ).all()
        for pid, person in found.items():
            person.wallet = {key: landing_url(tenant, template_id, pid) for template_id, key in templates}
    return found


def last_events(
    connection: Connection, profile_ids: Collection[str], name: str, since: datetime
) -> dict[str, datetime]:
    """When each profile last had a ``name`` track event, among those since ``since``."""
    query = (
        sa.select(EVENT.c.profile_id, sa.func.max(EVENT.c.timestamp))
        .where(EVENT.c.event == name, EVENT.c.timestamp >= since)
        .group_by(EVENT.c.profile_id)
    )
    rows = select_in(connection, query, EVENT.c.profile_id, profile_ids, pg_type="text")
    return {pid: as_utc(at) for pid, at in rows}


def sent_history(
    connection: Connection, profile_ids: Collection[str], since: datetime
) -> dict[str, list[tuple[str, datetime]]]:
    """(channel, sent at) of the real (not test) messages sent to each profile since ``since``."""
    history: defaultdict[str, list[tuple[str, datetime]]] = defaultdict(list)
    query = sa.select(DELIVERY.c.profile_id, DELIVERY.c.channel, DELIVERY.c.sent_at).where(
        DELIVERY.c.sent_at > since, DELIVERY.c.test.is_(False)
    )
    for pid, channel, at in select_in(connection, query, DELIVERY.c.profile_id, profile_ids, pg_type="text"):
        history[pid].append((channel, at))
    return dict(history)
