"""Pacing shared by every sender: token buckets (channel and tenant rate limits), evenly spaced
slots (a provider's per-number limit) and claims (a per-recipient limit), in-process on the
embedded default and through Redis otherwise."""

from __future__ import annotations

import threading
import time
import uuid
from itertools import pairwise

import pytest

from core.delivery import rates
from core.plugin_api import claim, pace


@pytest.fixture(params=["embedded", pytest.param("redis", marks=pytest.mark.redis)])
def paced(request, make_installation) -> None:
    """An installation on the embedded default, or one whose workers share Redis."""
    if request.param == "redis":
        make_installation("postgres", redis=True)
    else:
        make_installation("sqlite")


def test_calls_from_many_threads_never_start_faster_than_the_rate(paced) -> None:
    key, rate, calls = f"test:{uuid.uuid4().hex}", 20.0, 40
    started: list[float] = []
    lock = threading.Lock()

    def send(count: int) -> None:
        for _ in range(count):
            slot = pace(key, rate)
            assert time.time() >= slot - 0.001  # the caller waited for its slot
            with lock:
                started.append(slot)

    threads = [threading.Thread(target=send, args=(calls // 8,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    started.sort()
    # In any one second, at most `rate` starts; evenly spaced, so the whole run takes (calls-1)/rate.
    # Slots are evenly spaced whoever asks: in any one second, at most `rate` of them.
    assert len(started) == calls
    assert all(later - earlier >= 1 / rate - 1e-6 for earlier, later in pairwise(started))
    assert all(started[i + int(rate)] - started[i] >= 1.0 - 1e-6 for i in range(calls - int(rate)))


def test_a_claim_is_refused_with_the_wait_until_its_period_has_passed(paced) -> None:
    key = f"test:{uuid.uuid4().hex}"
    assert claim(key, 0.3) == 0.0
    wait = claim(key, 0.3)
    assert 0.0 < wait <= 0.3
    assert claim(f"{key}:other", 0.3) == 0.0  # keys are independent
    time.sleep(wait + 0.01)
    assert claim(key, 0.3) == 0.0


def test_token_buckets_grant_no_more_than_their_rate_whoever_takes(paced) -> None:
    channel = rates.Bucket(f"test:{uuid.uuid4().hex}", 5.0)  # fresh buckets hold a second's worth
    tenant = rates.Bucket(f"test:{uuid.uuid4().hex}", 3.0)
    assert rates.take([channel], 100)[0] == 5
    granted, wait = rates.take([channel], 100)
    assert granted == 0 and 0 < wait <= 0.25
    assert rates.take([channel, tenant], 100)[0] == 0  # the strictest bucket rules; nothing taken from it
    assert rates.take([tenant], 100)[0] == 3


class _HeldUpOnce:
    """The ``time`` module as pacing sees it, except that its next sleep overruns by ``stall`` seconds
    (the thread was held up: a busy interpreter, a collection)."""

    def __init__(self, stall: float) -> None:
        self.stall = stall

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds + self.stall)
        self.stall = 0.0

    def __getattr__(self, name: str):
        return getattr(time, name)


@pytest.mark.parametrize("late_after", [None, 0.02])
def test_a_slot_reached_late_is_given_up_for_the_next_only_when_asked(paced, monkeypatch, late_after) -> None:
    key, every = f"test:{uuid.uuid4().hex}", 0.05
    first = pace(key, 1 / every)  # the key's first slot: now
    monkeypatch.setattr(rates, "time", _HeldUpOnce(0.2))
    second = pace(key, 1 / every, late_after=late_after)
    if late_after is None:
        assert second == pytest.approx(first + every, abs=1e-3)  # kept, and used 200 ms late
    else:
        assert second >= first + 2 * every - 1e-6  # given up: the next free one, taken on time
