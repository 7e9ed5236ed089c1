"""Pacing shared by every sender: token buckets (channel and tenant rate limits), claims (a
per-recipient limit) and a provider's limit on arrivals within any second (a per-number limit),
in-process on the embedded default and through Redis otherwise."""

from __future__ import annotations

import heapq
import random
import threading
import time
import uuid
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.delivery import arrivals, rates
from core.plugin_api import claim, within_limit


@pytest.fixture(params=["embedded", pytest.param("redis", marks=pytest.mark.redis)])
def paced(request, make_installation) -> None:
    """An installation on the embedded default, or one whose workers share Redis."""
    if request.param == "redis":
        make_installation("postgres", redis=True)
    else:
        make_installation("sqlite")


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


def most_within_a_second(times: list[float]) -> int:
    """The most of ``times`` within any one second (as a provider counts, and the fakes)."""
    times, best, first = sorted(times), 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 1.0:
            first += 1
        best = max(best, last - first + 1)
    return best


def test_calls_held_up_on_their_way_never_arrive_more_than_the_limit_in_a_second(paced) -> None:
    """Each call is held up at random before it arrives and before it ends, as a busy process or the
    network would: the arrivals still stay within the limit in every second, and starts are spaced."""
    key, limit, calls = f"test:{uuid.uuid4().hex}", 20, 72
    starts: list[float] = []
    arrived: list[float] = []
    lock = threading.Lock()

    def send(count: int, seed: int) -> None:
        delays = random.Random(seed)
        for _ in range(count):
            with within_limit(key, limit, longest=5.0) as started:
                assert time.time() >= started - 0.001  # the caller waited for its start
                time.sleep(delays.choice([0.0, 0.0, 0.01, 0.08]))  # on the way there
                with lock:
                    starts.append(started)
                    arrived.append(time.time())
                time.sleep(delays.choice([0.0, 0.02, 0.15]))  # the answer on its way back

    threads = [threading.Thread(target=send, args=(calls // 12, seed)) for seed in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(arrived) == calls
    assert most_within_a_second(arrived) <= limit
    assert all(later - earlier >= 1 / limit - 1e-6 for earlier, later in pairwise(sorted(starts)))
    # Full use of the limit, less each call's own duration: 72 calls at 20 a second need over 3 s.
    assert max(arrived) - min(arrived) >= (calls - limit) / limit


def test_a_place_counts_until_a_second_after_its_call_ends(paced) -> None:
    key = f"test:{uuid.uuid4().hex}"
    with within_limit(key, 2, longest=5.0):
        first_ended = time.time()
    with within_limit(key, 2, longest=5.0):  # starts half a second later: starts are spaced 1 / limit
        time.sleep(0.3)  # a slow call
        second_ended = time.time()
    with within_limit(key, 2, longest=5.0) as third_started:
        pass
    # Both places were taken: the third waited for the first to have ended a second ago, not the second.
    assert first_ended + 1.0 <= third_started < second_ended + 1.0


def test_a_start_reached_too_late_is_asked_for_again(paced, monkeypatch) -> None:
    """A thread held up past its start for longer than HELD_UP may outlive its place: it asks again."""
    monkeypatch.setattr(arrivals, "HELD_UP", 0.05)
    asked: list[str] = []
    real_admit = arrivals._admit

    def admit(key: str, limit: int, hold: float, call: str) -> tuple[bool, float, float]:
        asked.append(call)
        found = real_admit(key, limit, hold, call)
        if len(asked) == 1:
            time.sleep(0.2)  # held up between the answer and the start
        return found

    monkeypatch.setattr(arrivals, "_admit", admit)
    with within_limit(f"test:{uuid.uuid4().hex}", 5, longest=1.0):
        pass
    assert len(asked) == 2 and asked[0] != asked[1]  # a new place, under a new call id


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(1, 12),
    senders=st.integers(1, 30),
    ways=st.lists(
        st.tuples(st.sampled_from([0.0, 0.001, 0.03, 0.4, 1.5]), st.sampled_from([0.0, 0.02, 0.9])),
        min_size=1,
        max_size=40,
    ),  # fmt: skip
)
def test_arrivals_within_any_second_never_exceed_the_limit(limit: int, senders: int, ways) -> None:
    """A simulated clock: senders ask for places, arrive after a hold-up and end after another, each
    asking again as soon as its call ends (or when told to). In no second do more than the limit arrive."""
    places, key = arrivals._LocalPlaces(), "simulated"
    events: list[tuple[float, int, str]] = [(0.0, n, "ask") for n in range(senders)]  # (when, order, what)
    arrived: list[float] = []
    while events and len(arrived) < 200:
        now, order, what = heapq.heappop(events)
        call = f"call-{len(arrived)}"
        if what == "ask":
            admitted, delay, _ = places.admit(key, limit, 30.0, call, now)
            if not admitted:
                heapq.heappush(events, (now + delay, order, "ask"))
                continue
            way_there, way_back = ways[len(arrived) % len(ways)]
            arrived.append(now + delay + way_there)
            heapq.heappush(events, (now + delay + way_there + way_back, order, f"end {call}"))
        else:
            places.end(key, what.removeprefix("end "), now)
            heapq.heappush(events, (now, order, "ask"))
    assert most_within_a_second(arrived) <= limit
