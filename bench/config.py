"""What to measure and how much: one object every benchmark reads, full size or ``--quick``."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from bench.installation import BACKENDS


@dataclass(frozen=True)
class Config:
    """Sizes and repetitions of the benchmarks (the defaults are the full run of ``scripts/bench``)."""

    runs: int = 5  # start-up, ingestion and processing: medians over this many runs
    backends: tuple[str, ...] = BACKENDS
    quick: bool = False
    # ingestion: load generator
    warmup_s: float = 2.0
    duration_s: float = 10.0
    batch_connections: int = 16
    track_connections: int = 32
    # processing: backlog size (people: a fifth of it)
    processing_events: int = 100_000
    # identity resolution
    resolution_events: int = 1_000_000
    resolution_people: int = 200_000
    resolution_runs: int = 1
    resolution_timeout_s: float = 3600.0
    # audiences (PostgreSQL only, whatever the backends): the kept data set and the repetitions
    audience_profiles: int = 1_000_000
    audience_events: int = 10_000_000
    audience_runs: int = 3  # refits
    audience_count_runs: int = 7  # segment counts after a warm-up
    audience_realtime_profiles: int = 200  # profiles that get one event and a re-evaluation
    rebuild: bool = False  # build the audiences data set again even if a complete one is kept
    # orchestration (PostgreSQL + Redis only): campaign, journeys, event-to-message latency
    orchestration_recipients: int = 100_000
    orchestration_runs: int = 1  # campaigns to everyone, one after the other (several minutes each)
    orchestration_threads: int = 4  # per worker process (2); 8 measured no faster (the cores are busy)
    orchestration_prefetch: int = 0  # dramatiq queue prefetch per worker process; 0: its default
    orchestration_journey_after: str = "exit"  # the step after the timers' wait, or "update_trait"
    orchestration_latency_events: int = 200
    orchestration_event_rate: float = 10.0  # latency events per second
    # loyalty (PostgreSQL + Redis only): earning rules applied to a backlog of purchases
    loyalty_events: int = 1_000_000
    loyalty_profiles: int = 100_000
    loyalty_runs: int = 1  # the loyalty tables are emptied between runs
    loyalty_threads: int = 4  # per worker process (2), as ``tessera worker`` has by default
    loyalty_prefetch: int = 0  # dramatiq queue prefetch per worker process; 0: its default
    loyalty_timeout_s: float = 3600.0
    # passes (PostgreSQL + Redis only): purchase event to APNs push, one purchase at a time
    pass_latency_customers: int = 50  # each with a pass installed on one device
    pass_latency_purchases: int = 300  # round-robin over the customers
    pass_latency_interval_s: float = 0.15  # between two purchases
    # wallet operation (PostgreSQL): a pass operation issued end to end against the fake services
    operation_profiles: int = 100_000
    operation_runs: int = 1  # a fresh installation each (one at full size)
    # channel sends (PostgreSQL + Redis only): a campaign through the FCM and WhatsApp plugins to their fakes
    channel_recipients: int = 100_000
    channel_runs: int = 1  # campaigns to everyone, one after the other (minutes each)
    channel_threads: int = 4  # per worker process (2), as in the orchestration section
    # The number's messages per second (one that 2 cores can reach), and the fake's limit.
    whatsapp_limit: int = 250


QUICK: dict[str, Any] = {
    "runs": 1,
    "quick": True,
    "warmup_s": 1.0,
    "duration_s": 3.0,
    "processing_events": 10_000,
    "resolution_events": 50_000,
    "resolution_people": 10_000,
    "resolution_timeout_s": 600.0,
    "audience_profiles": 20_000,
    "audience_events": 200_000,
    "audience_runs": 1,
    "orchestration_recipients": 5_000,
    "orchestration_latency_events": 40,
    "loyalty_events": 20_000,
    "loyalty_profiles": 2_000,
    "loyalty_timeout_s": 600.0,
    "pass_latency_customers": 10,
    "pass_latency_purchases": 40,
    "operation_profiles": 2_000,
    "channel_recipients": 5_000,
}


def make_config(quick: bool = False, **overrides: Any) -> Config:
    """The full-size or quick configuration, with the options given (not None) on top."""
    config = replace(Config(), **QUICK) if quick else Config()
    known = {f.name for f in fields(Config)}
    return replace(config, **{k: v for k, v in overrides.items() if v is not None and k in known})
