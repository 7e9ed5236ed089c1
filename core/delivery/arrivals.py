"""A provider's limit on calls reaching it: at most ``limit`` arriving within any one second, across
every worker process (through Redis; on the embedded default, across this process's threads).

A provider counts a sender's calls when they reach it. We never see that moment, only that it
falls between the call's start and its end. So a call counts from its start until one second after
its end (while it is under way, until its start plus the longest it may take), and a call starts
only when fewer than ``limit`` count at that moment. Why that holds whatever happens on the way
(a busy process, a collection, the network):

    Take the calls arriving within one second at the provider, and of them the one admitted last.
    Each of the others was admitted before it, and ended after its own arrival, so after the last
    one's arrival less a second, so after the last one's start less a second. So all of them
    still counted when the last one was admitted, which needs fewer than ``limit`` counting: the
    second holds at most ``limit``.

The price is the calls' own duration: each holds its place for a second plus the call, so calls
answered in 20 ms go at ``limit / 1.02`` a second at most. Starts are also spaced at least
``1 / limit`` apart, so that calls go steadily instead of a second's worth at once.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from core.delivery.rates import redis_script, shared_url

log = logging.getLogger(__name__)
# A thread reaching its start later than this (held up) asks again: its place only counts for the
# longest call plus this, and a call arriving after its place stopped counting could break the limit.
HELD_UP = 10.0

# KEYS[1]: a sorted set, a member per call that counts (score: until when it may still arrive);
# KEYS[2]: the earliest next start. ARGV: limit, seconds a place is held while its call is under
# way, the call's id. Returns {1, seconds until its start, its start} or, when the places are all
# under way, {0, seconds to ask again, 0}. Times are the server's clock, one clock for every process.
_ADMIT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local limit, hold = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 1)
local start = math.max(now, tonumber(redis.call('GET', KEYS[2])) or now)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local nth = tonumber(redis.call('ZREVRANGE', KEYS[1], limit - 1, limit - 1, 'WITHSCORES')[2])
  if nth > now then return {0, tostring(1 / limit), '0'} end
  start = math.max(start, nth + 1 + 1e-6)
end
redis.call('ZADD', KEYS[1], start + hold, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil((start + hold + 1 - now) * 1000))
redis.call('SET', KEYS[2], string.format('%.6f', start + 1 / limit), 'PX', math.ceil((start - now) * 1000) + 1000)
return {1, tostring(start - now), string.format('%.6f', start)}
"""
# KEYS[1]: the sorted set; ARGV[1]: the call's id. Its place now counts until a second from now.
_END = """
local clock = redis.call('TIME')
redis.call('ZADD', KEYS[1], 'XX', 'LT', tonumber(clock[1]) + tonumber(clock[2]) / 1000000, ARGV[1])
"""


class _LocalPlaces:
    """The same places in this process (embedded default)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.until: dict[str, dict[str, float]] = {}  # key -> call id -> until when it may arrive
        self.next_start: dict[str, float] = {}

    def admit(self, key: str, limit: int, hold: float, call: str, now: float) -> tuple[bool, float, float]:
        """As ``_ADMIT``, at ``now``."""
        with self.lock:
            places = {c: t for c, t in self.until.get(key, {}).items() if t > now - 1}
            self.until[key] = places
            start = max(now, self.next_start.get(key, now))
            if len(places) >= limit:
                nth = heapq.nlargest(limit, places.values())[-1]
                if nth > now:
                    return False, 1 / limit, 0.0
                start = max(start, nth + 1 + 1e-6)
            places[call] = start + hold
            self.next_start[key] = start + 1 / limit
            return True, start - now, start

    def end(self, key: str, call: str, now: float) -> None:
        """As ``_END``, at ``now``."""
        with self.lock:
            places = self.until.get(key, {})
            if call in places:
                places[call] = min(places[call], now)


_local = _LocalPlaces()


def _admit(key: str, limit: int, hold: float, call: str) -> tuple[bool, float, float]:
    """(admitted, seconds until the start or until asking again, the start on the scheduling clock)."""
    url = shared_url()
    if url is None:
        return _local.admit(key, limit, hold, call, time.time())
    admitted, delay, start = redis_script(url, _ADMIT)(
        [f"tessera:arrivals:{key}", f"tessera:arrivals:{key}:next"], [limit, hold, call]
    )
    return bool(admitted), float(delay), float(start)


def _end(key: str, call: str) -> None:
    url = shared_url()
    if url is None:
        _local.end(key, call, time.time())
    else:
        redis_script(url, _END)([f"tessera:arrivals:{key}"], [call])


@contextmanager
def within_limit(key: str, limit: int, longest: float) -> Iterator[float]:
    """Wait for a place among ``limit`` a second under ``key``, hold it for the block, then for one
    second more: calls made inside such blocks arrive at most ``limit`` within any one second,
    wherever between their start and end the provider counts them. ``longest``: the most seconds
    a call may take (its timeout). Gives the start (Unix seconds on the clock that schedules them:
    Redis's, or this machine's)."""
    call, hold = uuid.uuid4().hex, longest + HELD_UP
    while True:
        asked = time.monotonic()
        admitted, delay, start = _admit(key, limit, hold, call)
        time.sleep(max(delay, 0.0))  # counted from the answer: never before the start
        if admitted and time.monotonic() - asked - delay <= HELD_UP:
            break
        if admitted:  # held up too long: this place may stop counting before the call ends
            _end(key, call)
            call = uuid.uuid4().hex
    try:
        yield start
    finally:
        try:
            _end(key, call)
        except Exception:  # the call was made: its place counts until it lapses, which only costs room
            log.warning(
                "could not end place %s of %s; it counts for %.0f s more at most",
                call,
                key,
                hold,
                exc_info=True,
            )
