"""Sending on Apple Wallet (a campaign or journey step) issues the pass the message names; the
delivery keeps the serial, and the phone's install and removal land on the delivery and timeline."""

from __future__ import annotations

from sqlmodel import select
from tessera_wallet_apple.testchain import chain

from core.delivery.models import Delivery, DeliveryState, Message
from core.delivery.outbox import NewDelivery, write_deliveries
from core.internal_events.models import InternalEvent
from tests.passes.shop import CHANNEL, TENANT, Shop


def _send(shop: Shop, profile_id: str, content: dict[str, str], key: str) -> Delivery:
    message = Message(
        channel=CHANNEL, content={"variants": {"en": content}, "fallback": "en"}, marketing=False
    )
    shop.session.add(message)
    shop.session.flush()
    [delivery_id] = write_deliveries(shop.session, TENANT, [NewDelivery(
        idempotency_key=key, message_id=message.id or 0, profile_id=profile_id, channel=CHANNEL, address=profile_id,
    )])  # fmt: skip
    shop.session.commit()
    shop.run_jobs()
    delivery = shop.session.get(Delivery, delivery_id)
    assert delivery is not None
    return delivery


def test_a_send_issues_the_pass_and_the_install_marks_the_delivery(shop: Shop) -> None:
    ann = shop.customer("ann")
    delivery = _send(shop, ann, {"pass_template": "club_card"}, "send-1")
    held = shop.pass_of(ann)
    assert held is not None and held.delivery_id == delivery.id
    assert (delivery.state, delivery.provider_id) == (DeliveryState.sent, held.serial)
    registration = (f"/x/{TENANT}/wallet_apple/v1/devices/d1/registrations/"
                    f"{chain().pass_type_identifier}/{held.serial}")  # fmt: skip
    apple = {"Authorization": f"ApplePass {held.authentication_token}"}
    with shop.installation.client() as client:
        assert client.post(registration, headers=apple, json={"pushToken": "cd" * 32}).status_code == 201
        assert client.delete(registration, headers=apple).status_code == 200
    shop.session.refresh(delivery)
    assert delivery.installed_at is not None and delivery.removed_at is not None
    names = shop.session.exec(select(InternalEvent.name).where(InternalEvent.profile_id == ann)).all()
    assert {"Pass Installed", "Pass Removed"} <= set(names)


def test_a_send_can_put_a_notice_on_a_pass_already_issued(shop: Shop) -> None:
    ann = shop.customer("ann")
    _send(shop, ann, {"pass_template": "club_card"}, "send-1")
    _send(shop, ann, {"pass_template": "club_card", "notice": "Double points this weekend"}, "send-2")
    held = shop.pass_of(ann)
    assert held is not None and held.notice == "Double points this weekend"
    assert held.shown["tessera_notice"] == "Double points this weekend"


def test_a_send_naming_an_unknown_template_or_failing_a_profile_fails_with_the_reason(shop: Shop) -> None:
    ann, nameless = shop.customer("ann"), shop.customer("nameless", first_name=None)
    unknown = _send(shop, ann, {"pass_template": "nope"}, "send-1")
    assert (unknown.state, unknown.reason) == (DeliveryState.failed, "unknown_pass_template")
    broken = _send(shop, nameless, {"pass_template": "club_card"}, "send-2")
    assert (broken.state, broken.reason) == (DeliveryState.failed, "invalid_pass")
    assert "traits.first_name has no value" in (broken.detail or "")
