"""Sending through a channel: results written back, retries with backoff honouring Retry-After,
permanent failures kept with the provider's reason, rate limits, tracked links, statuses.

The recording channel (a pip-installed test plugin) sends to a local fake provider over HTTP.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlmodel import select

from core.campaigns import service as campaigns
from core.db.base import utcnow
from core.delivery import rates
from core.delivery.models import Delivery, DeliveryState
from core.delivery.policy_store import save_policy
from core.delivery.statuses import apply_channel_events
from core.messages.policy import Policy
from core.plugin_api import ChannelEvent, DeliveryStatus
from core.queue.models import Job
from core.reporting.report import report
from tests.delivery.conftest import CHANNEL, content
from tests.support import make_due

DELIVERY = Delivery.__table__  # type: ignore[attr-defined]


def _launch(shop, body: str = "Hello {{ traits.first_name }}") -> int:
    segment = shop.segment()
    data = campaigns.CampaignIn(name="Winter", segment_id=segment, channel=CHANNEL, content=content(body))
    campaign = campaigns.create_campaign(shop.session, shop.tenant, shop.scope(), data, "marketer")
    campaigns.launch(shop.session, shop.tenant, shop.scope(), campaign, "marketer")
    shop.session.commit()
    assert campaign.id is not None
    return campaign.id


def _deliveries(shop) -> list[Delivery]:
    shop.session.expire_all()
    return list(shop.session.exec(select(Delivery).order_by(Delivery.id)))


def test_a_campaign_reaches_every_member_once_with_their_personalized_text(shop) -> None:
    ids = shop.customers(5)
    campaign_id = _launch(shop)
    shop.run_jobs()
    rows = _deliveries(shop)
    assert {r.profile_id for r in rows} == set(ids)
    assert all(r.state == DeliveryState.sent and r.provider_id and r.sent_at for r in rows)
    received = {m.to: m.body for m in shop.provider.messages}
    assert received == {f"c{i}@example.com": f"Hello Ann{i}" for i in range(5)}
    assert all(m.idempotency_key.startswith(f"campaign:{campaign_id}:") for m in shop.provider.messages)


def test_a_rate_limited_send_is_retried_after_the_providers_retry_after(shop) -> None:
    shop.customers(1)
    shop.provider.fail_next(1, status=429, retry_after=30)
    _launch(shop)
    shop.run_jobs()
    (row,) = _deliveries(shop)
    assert row.state == DeliveryState.queued and row.reason == "rate_limited" and row.attempts == 1
    assert row.due_at >= utcnow() + timedelta(seconds=25)  # Retry-After wins over the 2 s backoff
    make_due(shop.session)
    shop.run_jobs()
    (row,) = _deliveries(shop)
    assert row.state == DeliveryState.sent and row.attempts == 2 and row.reason is None
    assert shop.provider.attempts_for("c0@example.com") == 2
    assert len(shop.provider.messages) == 1


def test_a_provider_outage_is_retried_with_growing_backoff_then_given_up(shop) -> None:
    shop.customers(1)
    shop.provider.fail_next(100, status=503)
    _launch(shop)
    delays = []
    for _ in range(8):
        shop.run_jobs()
        (row,) = _deliveries(shop)
        if row.state != DeliveryState.queued:
            break
        delays.append((row.due_at - utcnow()).total_seconds())
        make_due(shop.session)
    assert delays == sorted(delays) and delays[1] > delays[0]
    assert row.state == DeliveryState.failed and row.reason == "provider_unavailable"
    assert "Gave up after 8 attempts" in (row.detail or "")
    assert shop.provider.attempts_for("c0@example.com") == 8


def test_a_rejected_recipient_fails_for_good_with_the_providers_reason(shop) -> None:
    shop.customers(2)
    shop.provider.reject("c1@example.com")
    _launch(shop)
    shop.run_jobs()
    make_due(shop.session)
    shop.run_jobs()
    by_address = {r.address: r for r in _deliveries(shop)}
    assert by_address["c0@example.com"].state == DeliveryState.sent
    failed = by_address["c1@example.com"]
    assert failed.state == DeliveryState.failed and failed.reason == "invalid_recipient" and failed.failed_at
    assert failed.attempts == 1 and shop.provider.attempts_for("c1@example.com") == 1


def test_a_send_job_run_twice_sends_nothing_twice(shop) -> None:
    shop.customers(3)
    _launch(shop)
    shop.run_jobs()
    jobs = shop.session.exec(select(Job).where(Job.kind == "core.send_deliveries")).all()
    from core.delivery.sending import send_deliveries

    for job in jobs:  # a redelivered message after the job finished
        send_deliveries("shop", dict(job.payload))
    assert len(shop.provider.attempts) == 3
    assert [r.state for r in _deliveries(shop)] == [DeliveryState.sent] * 3


def test_links_are_tracked_and_statuses_reported_by_the_provider_land_on_the_delivery(shop) -> None:
    shop.customers(1)
    campaign_id = _launch(shop, "See https://shop.example/sale?x=1 now.")
    shop.run_jobs()
    (row,) = _deliveries(shop)
    (message,) = shop.provider.messages
    assert "https://shop.example/sale" not in message.body and "/l/shop/" in message.body
    assert row.links == ["https://shop.example/sale?x=1"]
    at = utcnow()
    events = [ChannelEvent(status=DeliveryStatus.delivered, provider_id=row.provider_id, occurred_at=at),
              ChannelEvent(status=DeliveryStatus.read, provider_id=row.provider_id, occurred_at=at),
              ChannelEvent(status=DeliveryStatus.read, provider_id="unknown")]  # fmt: skip
    assert apply_channel_events(shop.session, CHANNEL, events) == 2
    shop.session.commit()
    found = report(shop.session, campaign_id=campaign_id)
    assert (found.targeted, found.sent, found.delivered, found.opened) == (1, 1, 1, 1)


def test_rate_limits_grant_no_more_than_the_rate(shop) -> None:
    bucket = [rates.Bucket(f"test:{uuid.uuid4().hex}", 5.0)]  # a fresh bucket, full
    first, _ = rates.take(bucket, 100)
    second, wait = rates.take(bucket, 100)
    assert first == 5 and second == 0 and 0 < wait <= 0.25


def test_the_tenant_rate_limit_paces_a_campaign(shop) -> None:
    shop.customers(6)
    save_policy(shop.session, Policy(channel_rates={CHANNEL: 3.0}), "admin")
    shop.session.commit()
    _launch(shop)
    started = utcnow()
    shop.run_jobs()
    elapsed = (utcnow() - started).total_seconds()
    assert len(shop.provider.messages) == 6
    assert elapsed >= 0.9  # 3 at once, then 3 more a second later: paced, not dropped
