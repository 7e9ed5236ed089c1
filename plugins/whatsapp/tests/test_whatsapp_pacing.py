"""Throughput: every send takes the number's shared, evenly spaced slot (the core's ``pace``, tested
in tests/delivery/test_pacing.py), and the pair limit. What arrives per second at a fake answering
in 20 ms, from two worker processes, is measured by the benchmark (``scripts/bench --only
channel_sends``): timing belongs there, not in assertions here."""

from __future__ import annotations

import time
from typing import Any

import pytest
from tessera_whatsapp import sending
from tessera_whatsapp.channel import WhatsAppChannel
from tessera_whatsapp.sandbox import SANDBOX_PHONE_NUMBER_ID, FakeWhatsApp
from test_whatsapp_sending import ORDER, context, message

import core.plugin_api
from core.plugin_api import DeliveryStatus

Fake = tuple[FakeWhatsApp, str]


def test_every_send_takes_the_numbers_shared_slot(fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    """pace() is called once per send with the number's key and its limit less the headroom (98 %)."""
    calls: list[tuple[str, float]] = []
    monkeypatch.setattr(
        sending, "pace", lambda key, per_second, late_after=None: calls.append((key, per_second))
    )
    batch = [message(ORDER, i, to=str(20_000_000 + i)) for i in range(5)]
    WhatsAppChannel().deliver(context(fake[1], messages_per_second=1000), batch)
    assert calls == [(f"whatsapp:{SANDBOX_PHONE_NUMBER_ID}", 980.0)] * 5


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
