"""The launch job writes a campaign's deliveries chunk by chunk, each chunk with its send jobs in
one transaction: sending starts before the whole audience is written, a crash leaves whole chunks
that a re-run completes without writing anything twice, and a cancel stops the writing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import Session, select

from core.campaigns import service as campaigns
from core.campaigns.models import Campaign, CampaignStatus
from core.db.engines import tenant_engine
from core.delivery.models import Delivery
from core.delivery.outbox import SEND_DELIVERIES
from core.queue.models import Job
from tests.delivery.conftest import CHANNEL, content

CHUNK = 2


def _launched(shop, people: int) -> Campaign:
    shop.customers(people)
    data = campaigns.CampaignIn(name="Winter", segment_id=shop.segment(), channel=CHANNEL, content=content())
    campaign = campaigns.create_campaign(shop.session, shop.tenant, shop.scope(), data, "marketer")
    campaigns.launch(shop.session, shop.tenant, shop.scope(), campaign, "marketer")
    shop.session.commit()
    return campaign


def _rows(shop, campaign: Campaign) -> list[Delivery]:
    shop.session.expire_all()
    return list(shop.session.exec(select(Delivery).where(Delivery.campaign_id == campaign.id)).all())


def _queued_ids(shop) -> set[int]:
    jobs = shop.session.exec(select(Job).where(Job.kind == SEND_DELIVERIES)).all()
    return {int(i) for job in jobs for i in job.payload["ids"]}


def _run_launch(shop, campaign: Campaign, **listeners: Any) -> int:
    with Session(tenant_engine(shop.database), expire_on_commit=False) as session:
        for name, listener in listeners.items():
            event.listen(session, name, listener)
        written = campaigns.run_launch(session, shop.tenant, shop.scope(), campaign.id, chunk=CHUNK)
        session.commit()
    return written


def test_a_launch_interrupted_after_a_chunk_is_completed_by_its_rerun_without_repeats(shop) -> None:
    campaign = _launched(shop, 5)
    commits: list[int] = []

    def killed_at_the_second_commit(session: Session) -> None:
        if session.in_nested_transaction():
            return  # a savepoint's release (each send job is added in one)
        commits.append(1)
        if len(commits) == 2:
            raise RuntimeError("the worker died")

    with pytest.raises(RuntimeError, match="the worker died"):
        _run_launch(shop, campaign, before_commit=killed_at_the_second_commit)
    first = _rows(shop, campaign)
    assert len(first) == CHUNK, "the first chunk was committed on its own"
    assert _queued_ids(shop) == {row.id for row in first}, "with the send jobs that send it"
    assert shop.session.get(Campaign, campaign.id).status == CampaignStatus.launching

    assert _run_launch(shop, campaign) == 5 - CHUNK
    rows = _rows(shop, campaign)
    assert len({row.profile_id for row in rows}) == len(rows) == 5
    stored = shop.session.get(Campaign, campaign.id)
    assert stored.status == CampaignStatus.sending
    assert {row.message_id for row in rows} == {stored.message_id}, "one frozen message for every chunk"
    assert _queued_ids(shop) == {row.id for row in rows}

    shop.run_jobs()
    assert sorted(m.to for m in shop.provider.messages) == sorted(row.address for row in rows)


def test_a_campaign_cancelled_while_it_launches_stops_the_writing_and_suppresses_what_was_written(
    shop,
) -> None:
    campaign = _launched(shop, 5)
    cancelled: list[int] = []

    def cancel_after_the_first_chunk(session: Session) -> None:
        if cancelled or session.in_nested_transaction():
            return
        cancelled.append(1)
        with Session(tenant_engine(shop.database)) as marketer:
            campaigns.cancel(marketer, marketer.get(Campaign, campaign.id), "marketer")
            marketer.commit()

    assert _run_launch(shop, campaign, after_commit=cancel_after_the_first_chunk) == CHUNK
    rows = _rows(shop, campaign)
    assert [(row.state.value, row.reason) for row in rows] == [("suppressed", "cancelled")] * CHUNK
    assert shop.session.get(Campaign, campaign.id).status == CampaignStatus.cancelled
    shop.run_jobs()
    assert shop.provider.messages == []
