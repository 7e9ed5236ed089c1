"""Throughput: every send holds a place under the number's limit on arrivals (the core's
``within_limit``, tested in tests/delivery/test_pacing.py), and claims the pair limit. What arrives
per second at a fake answering in 20 ms, from two worker processes, is measured by the benchmark
(``python -m bench --only whatsapp_sends``): timing belongs there, not in assertions here."""

from __future__ import annotations

import time
from typing import Any

import pytest
from tessera_whatsapp import sending
from tessera_whatsapp.channel import WhatsAppChannel
from tessera_whatsapp.sandbox import FakeWhatsApp
from test_whatsapp_sending import ORDER, context, message

import core.plugin_api
from core.delivery import arrivals
from core.plugin_api import DeliveryStatus

Fake = tuple[FakeWhatsApp, str]


def test_sends_never_arrive_faster_than_the_numbers_limit(fake: Fake) -> None:
    """A batch larger than a second's worth, at a limit of 5 a second: no second at the fake holds
    more than 5, the fake refuses none, and every message is sent."""
    state, url = fake
    state.rate_limit, state.latency = 5, 0.05
    batch = [message(ORDER, i, to=str(20_000_000 + i)) for i in range(12)]
    results = WhatsAppChannel().deliver(context(url, messages_per_second=5), batch)
    assert [r.status for r in results] == [DeliveryStatus.sent] * 12
    assert state.max_per_second() <= 5 and state.rate_limited == 0
    assert max(state.request_times) - min(state.request_times) >= (12 - 5) / 5


def test_a_send_made_is_sent_even_when_its_place_cannot_be_ended(
    fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis gone right after the call: the message went, so it is ``sent``; a retryable failure would
    send it twice. Redis gone before the call: nothing went, the message waits (retryable)."""

    def redis_gone(*args: Any) -> None:
        raise ConnectionError("Redis is gone")

    monkeypatch.setattr(arrivals, "_end", redis_gone)
    (sent,) = WhatsAppChannel().deliver(context(fake[1]), [message(ORDER, 1)])
    assert sent.status == DeliveryStatus.sent and len(fake[0].sent) == 1
    monkeypatch.setattr(arrivals, "_admit", redis_gone)
    (waiting,) = WhatsAppChannel().deliver(context(fake[1]), [message(ORDER, 2, to="4915112345678")])
    assert (waiting.status, waiting.reason_code, waiting.retryable) == (
        DeliveryStatus.failed,
        "pacing_unavailable",
        True,
    )
    assert len(fake[0].sent) == 1


def test_enough_threads_for_high_limits() -> None:
    """Sends in flight scale with the limit: 1000/s at up to 100 ms an answer needs 100."""
    assert sending.workers_for(1000, 500) == 100
    assert sending.workers_for(80, 500) == 8
    assert sending.workers_for(1, 500) == sending.MIN_WORKERS
    assert sending.workers_for(1000, 3) == 3


def test_pair_limit_is_claimed_before_sending(fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second message to one customer within 6 s is not sent: retryable pair_rate_limited with the wait."""
    monkeypatch.setattr(sending, "claim", core.plugin_api.claim)  # the real, shared claim
    state, url = fake
    state.pair_interval = 6.0
    customer, other = f"3{time.time_ns() % 10**11:011d}", f"4{time.time_ns() % 10**11:011d}"
    (first,) = WhatsAppChannel().deliver(context(url), [message(ORDER, 1, to=customer)])
    results = WhatsAppChannel().deliver(
        context(url), [message(ORDER, 2, to=customer), message(ORDER, 3, to=other)]
    )
    by_id = {r.delivery_id: r for r in results}
    assert first.status == DeliveryStatus.sent and by_id["3"].status == DeliveryStatus.sent
    limited = by_id["2"]
    assert (limited.status, limited.reason_code, limited.retryable) == (
        DeliveryStatus.failed,
        "pair_rate_limited",
        True,
    )
    assert limited.retry_after is not None and 5.0 < limited.retry_after <= 6.0
    assert [s["body"]["to"] for s in state.sent] == [customer, other] and state.rate_limited == 0


def test_the_fake_enforces_metas_pair_limit(fake: Fake) -> None:
    """Without the plugin's claim (another sender), the fake answers 131056: retryable after 6 s."""
    state, url = fake
    state.pair_interval = 6.0
    results: list[Any] = [WhatsAppChannel().deliver(context(url), [message(ORDER, i)])[0] for i in (1, 2)]
    assert results[0].status == DeliveryStatus.sent
    assert (results[1].reason_code, results[1].retryable, results[1].retry_after) == (
        "pair_rate_limited",
        True,
        6.0,
    )
    assert "131056" in (results[1].detail or "")
