"""Live passes end to end: a purchase changes the points balance, the pass is re-issued, a push
reaches a fake APNs over HTTP/2 and TLS on loopback, and the device then gets the new pass; APNs
saying a device is gone (410) removes its registration."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from tessera_wallet_apple.apns import close_clients
from tessera_wallet_apple.fake_apns import FakeApns, running_fake_apns
from tessera_wallet_apple.testchain import chain

from core.ingest.service import accept
from core.loyalty.models import EarningRule, RuleKind, RuleStatus
from core.profiles.jobs import process_events
from tests.passes.shop import TENANT, Shop, configure_wallet
from tests.support import bearer

TOKENS = ("a1" * 32, "b2" * 32)


@pytest.fixture
def apns(shop: Shop) -> Iterator[FakeApns]:
    """A fake APNs over HTTP/2 + TLS that accepts the shop's Pass Type ID certificate; the wallet live on it."""
    with running_fake_apns(chain().ca_bundle_pem.encode()) as fake:
        configure_wallet(sandbox=False, apns_url=fake.url, apns_ca_pem=fake.ca_pem.decode())
        yield fake
    close_clients()


def _installed(shop: Shop, client: TestClient, user: str) -> dict[str, str]:
    """A customer whose card is installed on two devices."""
    profile = shop.customer(user)
    issued = client.post("/api/v1/passes", headers=bearer(shop.token),
                         json={"template_id": shop.template.id, "profile_id": profile})  # fmt: skip
    assert issued.status_code == 201, issued.text
    held = shop.pass_of(profile)
    assert held is not None
    for number, token in enumerate(TOKENS):
        url = (f"/x/{TENANT}/wallet_apple/v1/devices/device{number}/registrations/"
               f"{chain().pass_type_identifier}/{held.serial}")  # fmt: skip
        answer = client.post(url, headers={"Authorization": f"ApplePass {held.authentication_token}"},
                             json={"pushToken": token})  # fmt: skip
        assert answer.status_code == 201
    return {"profile": profile, "serial": held.serial, "token": held.authentication_token}


def _purchase(shop: Shop, user: str, revenue: float) -> None:
    body = {"type": "track", "userId": user, "event": "Order Completed", "timestamp": datetime.now(UTC).isoformat(),
            "properties": {"order_id": uuid.uuid4().hex, "revenue": revenue}, "messageId": uuid.uuid4().hex}  # fmt: skip
    assert not accept(shop.session, TENANT, [body]).rejected
    process_events(TENANT, {})
    shop.run_jobs()


def test_a_purchase_pushes_the_devices_and_the_new_pass_is_served(shop: Shop, apns: FakeApns) -> None:
    shop.session.add(EarningRule(program_id=shop.program.id or 0, name="Per euro", event="Order Completed",
                                 kind=RuleKind.per_amount, points=1, status=RuleStatus.active,
                                 activated_at=datetime(2020, 1, 1, tzinfo=UTC)))  # fmt: skip
    shop.session.commit()
    with shop.installation.client() as client:
        card = _installed(shop, client, "ann")
        _purchase(shop, "ann", 42)
        pushes = apns.devices.pushes()
        assert sorted(p.token for p in pushes) == sorted(TOKENS)
        assert {(p.topic, p.body, p.http_version) for p in pushes} == {
            (chain().pass_type_identifier, "{}", "2")
        }
        listing = client.get(
            f"/x/{TENANT}/wallet_apple/v1/devices/device0/registrations/{chain().pass_type_identifier}"
        )
        assert listing.json()["serialNumbers"] == [card["serial"]]
        latest = client.get(f"/x/{TENANT}/wallet_apple/v1/passes/{chain().pass_type_identifier}/{card['serial']}",
                            headers={"Authorization": f"ApplePass {card['token']}"})  # fmt: skip
        with zipfile.ZipFile(io.BytesIO(latest.content)) as pkpass:
            shown = json.loads(pkpass.read("pass.json"))
        [points] = [f for f in shown["storeCard"]["primaryFields"] if f["key"] == "points"]
        assert points["value"] == 42 and points["changeMessage"] == "You now have %@ points"
    assert "pushed" in shop.activity(card["serial"])


def test_a_device_apns_calls_gone_loses_its_registration(shop: Shop, apns: FakeApns) -> None:
    with shop.installation.client() as client:
        card = _installed(shop, client, "ann")
        apns.devices.mark_unregistered(TOKENS[0])
        shop.give(card["profile"], 10)
        from core.loyalty.events import tell_plugins

        tell_plugins(TENANT, {card["profile"]})
        shop.run_jobs()
    left = shop.registrations()
    assert left == [TOKENS[1]]
    assert shop.activity(card["serial"])[-2:] == ["removed", "pushed"]
