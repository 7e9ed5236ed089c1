"""Journey measurements of the orchestration benchmark: timers firing at once, and the latency from
an ingested event to the journey's message at the provider."""

from __future__ import annotations

import random
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from bench.orchestrationdata import user_id_of
from bench.orchestrationsetup import JOB_TIMEOUT_S, POLL_S, CpuMeter, Setup, cpu_text, wait_idle
from bench.processes import Running
from bench.report import progress

LATENCY_EVENT = "Bench Ping"
DELIVERY_WAIT_S = 60.0  # how long the last events' messages may take to arrive
WARMUP_EVENTS = 10


@dataclass
class TimerSample:
    """A journey with every profile waiting on its timer, all fired at once."""

    after: str  # the step after the wait
    entries: int
    enter_s: float  # entering them all (chunks of 2,000, one process)
    seconds: float  # from the fire to no entry waiting or being advanced
    settled_s: float  # to no job due or running either (what the advance set off: segment updates)
    states: dict[str, int]
    cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        """Entries advanced per second."""
        return self.entries / self.seconds


@dataclass
class LatencySample:
    """Events sent through ``POST /v1/track`` at a steady rate, and when their messages arrived."""

    events: int
    rate: float
    latencies_ms: list[float]
    missing: int
    written_ms: list[float] = field(default_factory=list)  # request to the delivery row written
    sent_ms: list[float] = field(default_factory=list)  # delivery row written to the provider

    @property
    def written_p50_ms(self) -> float | None:
        """The median time from the request to the journey's delivery row."""
        return statistics.median(self.written_ms) if self.written_ms else None

    @property
    def sent_p50_ms(self) -> float | None:
        """The median time from the delivery row to the provider."""
        return statistics.median(self.sent_ms) if self.sent_ms else None

    @property
    def p50_ms(self) -> float:
        """The median latency."""
        return statistics.median(self.latencies_ms)

    @property
    def p99_ms(self) -> float:
        """The 99th percentile (nearest rank)."""
        return percentile(self.latencies_ms, 0.99)


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (``share`` between 0 and 1) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def _entry_states(conn: Any, journey_id: int) -> dict[str, int]:
    rows = conn.execute(
        text("SELECT state, count(*) FROM journey_entry WHERE journey_id = :j GROUP BY state"),
        {"j": journey_id},
    ).all()
    return {str(state): int(count) for state, count in rows}


def measure_timers(setup: Setup, server: Running, after: str) -> TimerSample:
    """Enter every profile into a journey waiting an hour, fire all timers at once, time the advance."""
    entered = setup.job("journey-wait", after=after)
    progress(f"orchestration: {entered['entered']:,} entries waiting on timers (entered in "
             f"{entered['seconds']:.1f} s)")  # fmt: skip
    wait_idle(setup.tenant.database_url)
    assert server.workers is not None
    meter = CpuMeter(server.workers.pid, setup.provider_pid)
    fired = setup.job("journey-fire")
    t0, journey_id = fired["fired_at"], int(entered["journey_id"])
    engine = create_engine(setup.tenant.database_url)
    try:
        with engine.connect() as conn:
            while True:
                states = _entry_states(conn, journey_id)
                conn.rollback()
                if not states.get("waiting") and not states.get("active"):
                    break
                if time.time() - t0 > JOB_TIMEOUT_S:
                    raise TimeoutError(f"journey entries still waiting after {JOB_TIMEOUT_S:.0f} s: {states}")
                time.sleep(POLL_S)
    finally:
        engine.dispose()
    seconds = time.time() - t0
    wait_idle(setup.tenant.database_url, settle_s=POLL_S)
    sample = TimerSample(after=after, entries=int(entered["entered"]), enter_s=float(entered["seconds"]),
                         seconds=seconds, settled_s=time.time() - t0, states=states, cpu_s=meter.used())  # fmt: skip
    progress(f"orchestration: {sample.entries:,} timers ({after}) advanced in {seconds:.1f} s = "
             f"{sample.per_second:,.0f}/s, settled at {sample.settled_s:.1f} s; {states}; CPU {cpu_text(sample.cpu_s)}")  # fmt: skip
    return sample


def _send_events(server: Running, write_key: str, users: list[str], rate: float) -> dict[str, float]:
    """One track event per user at ``rate`` per second, each with a fresh token; token -> sent at."""
    sent: dict[str, float] = {}
    start = time.perf_counter()
    with httpx.Client(base_url=server.url, auth=(write_key, ""), timeout=30) as client:
        for index, user in enumerate(users):
            pause = start + index / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            token = uuid.uuid4().hex
            event = {"userId": user, "event": LATENCY_EVENT, "properties": {"token": token}}
            at = time.time()
            client.post("/v1/track", json=event).raise_for_status()
            sent[token] = at
    return sent


def _until_accepted(setup: Setup, count: int) -> None:
    """Wait until the provider accepted ``count`` messages (at most :data:`DELIVERY_WAIT_S`)."""
    deadline = time.time() + DELIVERY_WAIT_S
    while setup.provider.stats()["accepted"] < count and time.time() < deadline:
        time.sleep(POLL_S)


def _written(database_url: str, tokens: set[str]) -> dict[str, float]:
    """When the journey wrote the delivery of each token (epoch seconds), from the delivery rows."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT CAST(event AS jsonb) ->> 'token', EXTRACT(EPOCH FROM created_at) FROM delivery "
                     "WHERE journey_id IS NOT NULL AND event IS NOT NULL")
            ).all()  # fmt: skip
    finally:
        engine.dispose()
    return {str(token): float(at) for token, at in rows if token in tokens}


def measure_latency(setup: Setup, server: Running, events: int, rate: float) -> LatencySample:
    """Events to an event-triggered journey that sends at once; latency to the provider, per event."""
    setup.job("journey-event", event=LATENCY_EVENT)
    wait_idle(setup.tenant.database_url)
    users = [user_id_of(i) for i in random.Random(5).sample(range(setup.recipients), events + WARMUP_EVENTS)]
    # First uses in each worker process (connections, the channel's HTTP session) are not timed.
    _until_accepted(setup, len(_send_events(server, setup.tenant.write_key, users[:WARMUP_EVENTS], rate)))
    wait_idle(setup.tenant.database_url)
    setup.provider.control("reset")
    sent = _send_events(server, setup.tenant.write_key, users[WARMUP_EVENTS:], rate)
    _until_accepted(setup, len(sent))
    arrived = {}
    for message in setup.provider.recorded()["messages"]:
        token = message["body"].removeprefix("Token ")
        if token in sent:
            arrived[token] = message["received_at"]
    latencies = [(arrived[token] - at) * 1000 for token, at in sent.items() if token in arrived]
    written = _written(setup.tenant.database_url, set(arrived))
    sample = LatencySample(
        events=len(sent), rate=rate, latencies_ms=latencies, missing=len(sent) - len(arrived),
        written_ms=[(written[t] - sent[t]) * 1000 for t in written],
        sent_ms=[(arrived[t] - written[t]) * 1000 for t in written],
    )  # fmt: skip
    if latencies:
        progress(f"orchestration: event to provider: {len(latencies)} of {len(sent)} arrived; p50 "
                 f"{sample.p50_ms:.0f} ms, p99 {sample.p99_ms:.0f} ms, max {max(latencies):.0f} ms")  # fmt: skip
    return sample
