"""When two profiles turn out to be one person, their passes follow the survivor: one card per
template, the duplicate voided."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlmodel import select

from core.db.engines import control_session
from core.ingest.service import accept
from core.passes.issuing import issue
from core.passes.models import PassState, WalletPass
from core.passes.wallets import wallet_for
from core.profiles.jobs import process_events
from core.profiles.service import find_by_identifier, get_profile
from core.tenancy.tenants import get_tenant
from tests.passes.shop import CHANNEL, TENANT, Shop


def _identify(shop: Shop, **body: object) -> None:
    message = {"type": "identify", "timestamp": datetime.now(UTC).isoformat(), "messageId": uuid.uuid4().hex,
               **body}  # fmt: skip
    assert not accept(shop.session, TENANT, [message]).rejected
    process_events(TENANT, {})
    shop.session.expire_all()


def test_a_merge_moves_the_pass_to_the_survivor_and_voids_a_duplicate(sqlite_shop: Shop) -> None:
    shop = sqlite_shop
    ann = shop.customer("ann", email="ann@example.com")
    _identify(shop, anonymousId="visitor-1", traits={"first_name": "Ann", "email": "ann@shop.example"})
    with control_session() as control:
        wallet = wallet_for(get_tenant(control, TENANT), CHANNEL)
    other = find_by_identifier(shop.session, "anonymous_id", "visitor-1").id
    issue(shop.session, wallet, shop.template, [ann, other])
    shop.session.commit()
    first, second = shop.pass_of(ann), shop.pass_of(other)
    assert first is not None and second is not None
    _identify(shop, userId="ann", anonymousId="visitor-1", traits={"email": "ann@shop.example"})
    survivor = get_profile(shop.session, other).id
    assert survivor == get_profile(shop.session, ann).id
    rows = {row.serial: row for row in shop.session.exec(select(WalletPass))}
    kept = [serial for serial, row in rows.items() if row.state == PassState.active]
    assert len(kept) == 1 and rows[kept[0]].profile_id == survivor
    voided = [row for row in rows.values() if row.state == PassState.voided]
    assert len(voided) == 1 and shop.activity(voided[0].serial)[-1] == "voided"
