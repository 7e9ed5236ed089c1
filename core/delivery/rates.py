"""Rate limits on sending: token buckets per tenant and channel, and claims per recipient, shared by
every worker process.

With Redis the buckets live there (one Lua script takes from several buckets atomically, so all
workers of all processes share them); on the embedded default they live in this process, which
is then the only sender. A bucket refills at ``rate`` tokens per second and holds at most one
second's worth (at least one token).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import redis
from redis.commands.core import Script

from core.settings import get_settings


@dataclass(frozen=True)
class Bucket:
    """One limit: ``key`` names what it limits, ``rate`` in sends per second."""

    key: str
    rate: float


# KEYS: the buckets; ARGV: now (seconds), wanted, then one rate per bucket.
# Returns {granted, seconds until the next token when none was granted (as text)}.
_TAKE = """
local now = tonumber(ARGV[1])
local wanted = tonumber(ARGV[2])
local levels = {}
local grant = wanted
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 + i])
  local burst = math.max(1, rate)
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(state[1]) or burst
  local at = tonumber(state[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
  levels[i] = tokens
  grant = math.min(grant, math.floor(tokens))
end
local wait = 0
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 + i])
  local left = levels[i] - grant
  redis.call('HSET', key, 'tokens', left, 'at', now)
  redis.call('EXPIRE', key, 3600)
  if grant == 0 then wait = math.max(wait, (1 - left) / rate) end
end
return {grant, tostring(wait)}
"""


class _LocalBuckets:
    """The same buckets in this process (embedded default)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.levels: dict[str, tuple[float, float]] = {}

    def take(self, buckets: list[Bucket], wanted: int, now: float) -> tuple[int, float]:
        with self.lock:
            levels = []
            grant = wanted
            for bucket in buckets:
                burst = max(1.0, bucket.rate)
                tokens, at = self.levels.get(bucket.key, (burst, now))
                tokens = min(burst, tokens + max(0.0, now - at) * bucket.rate)
                levels.append(tokens)
                grant = min(grant, math.floor(tokens))
            wait = 0.0
            for bucket, tokens in zip(buckets, levels, strict=True):
                left = tokens - grant
                self.levels[bucket.key] = (left, now)
                if grant == 0:
                    wait = max(wait, (1 - left) / bucket.rate)
            return grant, wait


_local = _LocalBuckets()
REDIS_CONNECTIONS = 64  # per process: a Redis call takes well under a millisecond
_clients: dict[str, redis.Redis] = {}


def _client(url: str) -> redis.Redis:
    """This process's Redis client for the buckets and slots, shared by all its threads.

    A blocking pool: when more threads than connections ask at once (a channel's many send threads
    pacing), the extra ones wait a moment for a free connection instead of failing.
    """
    found = _clients.get(url)
    if found is None:
        pool = redis.BlockingConnectionPool.from_url(url, max_connections=REDIS_CONNECTIONS, timeout=30)
        found = _clients.setdefault(url, redis.Redis(connection_pool=pool))
    return found


def shared_url() -> str | None:
    """The Redis URL that limits are shared through across worker processes; None on the embedded
    default, where this process is the only sender."""
    settings = get_settings()
    return settings.redis_url if settings.uses_redis else None


_scripts: dict[tuple[str, str], Script] = {}


def redis_script(url: str, source: str) -> Script:
    """A Lua script of this module on this process's client for ``url``, called by its SHA1.

    Sent whole (EVAL), a script costs its text on the wire and a hash in Redis at every call: three
    calls a message for a channel under a provider's limit (a claim, a place, its end).
    """
    found = _scripts.get((url, source))
    if found is None:
        found = _scripts.setdefault((url, source), _client(url).register_script(source))
    return found


def take(buckets: list[Bucket], wanted: int) -> tuple[int, float]:
    """Take up to ``wanted`` tokens from every bucket at once: (granted, seconds to wait if none)."""
    if not buckets or wanted <= 0:
        return wanted, 0.0
    now = time.time()
    url = shared_url()
    if url is None:
        return _local.take(buckets, wanted, now)
    keys = [f"tessera:rate:{bucket.key}" for bucket in buckets]
    granted, wait = redis_script(url, _TAKE)(keys, [now, wanted, *(b.rate for b in buckets)])
    return int(granted), float(wait)


def acquire(buckets: list[Bucket], wanted: int) -> int:
    """Wait until at least one token is free in every bucket, then take up to ``wanted``."""
    while True:
        granted, wait = take(buckets, wanted)
        if granted:
            return granted
        time.sleep(max(wait, 0.001))


def buckets_for(
    tenant: str, channel: str, rates: list[float | None], tenant_rate: float | None
) -> list[Bucket]:
    """The buckets a send on ``channel`` takes from: the strictest channel rate, and the tenant's."""
    buckets = []
    channel_rates = [rate for rate in rates if rate]
    if channel_rates:
        buckets.append(Bucket(f"{tenant}:{channel}", min(channel_rates)))
    if tenant_rate:
        buckets.append(Bucket(f"{tenant}:*", tenant_rate))
    return buckets


# A claim on a key for a period. KEYS[1]: the key holding the time it is free again; ARGV[1]: the
# period in seconds. "Now" is the server's clock, read as the script runs (a caller's reading may be
# stale by the time its call arrives). Returns 0, or the seconds until the key is free (as text).
_CLAIM = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local free = tonumber(redis.call('GET', KEYS[1])) or now
if free > now then return tostring(free - now) end
local every = tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.6f', now + every), 'PX', math.ceil(every * 1000) + 1000)
return '0'
"""
_local_claims: dict[str, float] = {}
_local_claims_lock = threading.Lock()


def claim(key: str, every_seconds: float) -> float:
    """Claim ``key`` if its last claim is at least ``every_seconds`` old: 0.0; else the seconds
    until it may be claimed (and nothing is claimed). Shared by every worker process through Redis
    (on the embedded default, by this process's threads)."""
    url = shared_url()
    if url is None:
        with _local_claims_lock:
            now = time.time()
            free = _local_claims.get(key, now)
            if free > now:
                return free - now
            _local_claims[key] = now + every_seconds
            return 0.0
    wait = float(redis_script(url, _CLAIM)([f"tessera:claim:{key}"], [every_seconds]))
    return max(wait, 0.001) if wait > 0 else 0.0
