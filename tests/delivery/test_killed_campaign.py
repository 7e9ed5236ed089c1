"""A worker killed in the middle of a campaign: after a restart every recipient got it exactly once.

PostgreSQL + Redis, real ``tessera worker`` processes, the recording channel sending to a local
fake provider that answers slowly. The first worker is SIGKILLed while send jobs are running
(some messages accepted by the provider, others in flight); Redis is flushed so their queue
messages are gone too. The new worker's sweeper re-sends the abandoned jobs once their lease
expires; messages the provider already accepted come back with the same idempotency key and are
not sent twice.
"""

from __future__ import annotations

import collections

import pytest
from sqlmodel import Session, func, select

from core.campaigns import service as campaigns
from core.db.engines import tenant_engine
from core.delivery.models import Delivery, DeliveryState
from core.queue.broker import setup_broker
from tests.delivery.conftest import CHANNEL, content
from tests.plugins_host.packages import subprocess_env
from tests.workers import kill, redis_or_skip, start_worker, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(240)]
RECIPIENTS = 600


@pytest.fixture
def installation(make_installation):
    """This test runs on PostgreSQL + Redis only (it overrides the both-backends fixture)."""
    return make_installation("postgres", redis=True)


def test_a_killed_worker_mid_campaign_ends_with_everyone_sent_exactly_once(shop, workers, tmp_path) -> None:
    queue = redis_or_skip(shop.installation.env["TESSERA_REDIS_URL"])
    queue.flushdb()
    assert type(setup_broker()).__name__ == "RedisBroker"
    shop.provider.latency_ms = 30  # slow enough to kill the worker with sends in flight
    try:
        shop.customers(RECIPIENTS)
        segment = shop.segment()
        data = campaigns.CampaignIn(name="Big", segment_id=segment, channel=CHANNEL, content=content())
        campaign = campaigns.create_campaign(shop.session, shop.tenant, shop.scope(), data, "marketer")
        campaigns.launch(shop.session, shop.tenant, shop.scope(), campaign, "marketer")
        shop.session.commit()

        def sent() -> int:
            with Session(tenant_engine(shop.database)) as session:
                query = select(func.count()).select_from(Delivery).where(Delivery.state == DeliveryState.sent)
                return int(session.exec(query).one())

        env = subprocess_env(shop.installation.env, TESSERA_JOB_LEASE_SECONDS="2",
                             TESSERA_SWEEP_INTERVAL_SECONDS="0.5")  # fmt: skip
        first_log, second_log = tmp_path / "worker-1.log", tmp_path / "worker-2.log"
        workers.append(start_worker(env, first_log, tmp_path, threads=2))
        wait_until(lambda: len(shop.provider.messages) >= 150, "the first worker to send some", first_log)
        kill(workers[0])
        queue.flushdb()
        assert sent() < RECIPIENTS, "the campaign finished before the kill: nothing was tested"

        workers.append(start_worker(env, second_log, tmp_path, threads=2))
        wait_until(lambda: sent() == RECIPIENTS, "every delivery to be sent", second_log, seconds=120)

        received = collections.Counter(m.to for m in shop.provider.messages)
        assert len(received) == RECIPIENTS and set(received.values()) == {1}
    finally:
        for worker in workers:
            kill(worker)
        workers.clear()
        queue.flushdb()
