"""Audience work timed inside Tessera: run as a subprocess with the installation's environment.

``python -m bench.audiencejobs JOB --tenant SLUG --now ISO [...]`` prints one JSON object. Every
job uses the data set's reference time as "now" (the segments' :class:`~core.segments.clock.Clock`
too), and imports what it needs (numpy, scipy, the plugins) before any clock starts, as a worker
that has done the work once has.

- ``refit``: fit the lifetime-value models and recompute every buyer's traits as
  :func:`core.traits.jobs.refit` does (read the purchases once, fit, score and write, commit).
  Seconds of each step and in all; buyers; the fit's status; peak resident memory (``ru_maxrss``).
  ``--profile FILE`` also writes cProfile statistics.
- ``count``: :func:`core.segments.service.count` of :data:`bench.audiencesegments.COUNT_RULE`,
  once to warm up, then ``--runs`` times. Median and first seconds, members.
- ``realtime``: saves the 20 segments of :data:`bench.audiencesegments.SEGMENTS` and evaluates
  them in batch (:func:`core.segments.membership.refresh_all`, timed for information); then for
  ``--profiles`` sampled profiles, stores one new event (an order also refreshes the buyer's
  computed traits, as processing does; not timed) and times what
  :func:`core.segments.jobs.after_profiles_changed` does for that profile: a session,
  :func:`core.segments.membership.reevaluate` (load its facts, decide the 20 rules, write entries
  and exits), commit. The segments, memberships and events it added are removed afterwards (the
  computed traits of the buyers it gave an order stay refreshed until the next refit, which every
  run of the section starts with).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import random
import resource
import statistics
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from bench.audiencesegments import COUNT_RULE, NEW_EVENTS, PREFIX, SEGMENTS

SOURCE = "bench-realtime"  # the source of the events the real-time benchmark adds
WARMUP_PROFILES = 5


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (``share`` between 0 and 1) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def refit(tenant: str, now: datetime) -> dict[str, Any]:
    """What :func:`core.traits.jobs.refit` does, as of ``now``, timed step by step: read every buyer's
    purchases (and summarise them), fit, then score and write every buyer and commit."""
    from core.db.engines import tenant_engine
    from core.traits.jobs import tenant_zone
    from core.traits.service import compute_all, fit_models, load_history

    database, zone = tenant_zone(tenant)
    before = peak_rss_mib()
    started = time.perf_counter()
    with Session(tenant_engine(database), expire_on_commit=False) as session:
        history = load_history(session, now, zone)
        read = time.perf_counter()
        fit = fit_models(session, zone=zone, history=history)
        fitted = time.perf_counter()
        buyers = compute_all(session, zone=zone, history=history)
        session.commit()
    done = time.perf_counter()
    return {"read_s": read - started, "fit_s": fitted - read, "score_s": done - fitted, "seconds": done - started,
            "buyers": buyers, "customers": fit.customers, "repeat_buyers": fit.repeat_buyers, "status": fit.status,
            "message": fit.message, "peak_rss_mib": peak_rss_mib(), "rss_before_mib": before}  # fmt: skip


def count(tenant: str, now: datetime, runs: int) -> dict[str, Any]:
    """Count the three-condition segment once to warm up, then ``runs`` times."""
    from core.db.engines import tenant_engine
    from core.segments.clock import Clock
    from core.segments.rules import parse_rule
    from core.segments.service import count as count_members
    from core.traits.jobs import tenant_zone

    database, zone = tenant_zone(tenant)
    clock, rule = Clock.at(zone, now), parse_rule(COUNT_RULE)
    seconds, members = [], 0
    for _ in range(runs + 1):
        with Session(tenant_engine(database)) as session:
            started = time.perf_counter()
            members = count_members(session, rule, clock)
            seconds.append(time.perf_counter() - started)
    return {"median_s": statistics.median(seconds[1:]), "first_s": seconds[0], "runs": runs, "members": members,
            "all_s": seconds}  # fmt: skip


def _cleanup(session: Session) -> None:
    """Remove what a real-time run adds: the bench segments and all they wrote, the new events.

    The data set's database belongs to the benchmark: its only memberships and internal events
    are those of the bench segments.
    """
    connection = session.connection()
    connection.execute(sa.text("TRUNCATE segment_membership, segment_size, internal_event"))
    connection.execute(sa.text("DELETE FROM segment WHERE name LIKE :prefix"), {"prefix": PREFIX + "%"})
    connection.execute(sa.text("DELETE FROM event WHERE source = :source"), {"source": SOURCE})
    session.commit()


def _create_segments(session: Session, conditions: Any) -> None:
    from core.segments.service import create_segment

    for name, rule in SEGMENTS.items():
        create_segment(session, PREFIX + name, rule, "bench", conditions)
    session.commit()


def _add_event(session: Session, profile_id: str, name: str, at: datetime, zone: Any) -> None:
    """Store one processed event of the profile (an order also refreshes its computed traits)."""
    from core.ingest.models import Event
    from core.traits.service import refresh_profiles

    properties: dict[str, Any] = {"category": "shoes", "price": 79.0}
    if name == "Order Completed":
        properties = {"order_id": f"rt-{uuid.uuid4().hex}", "revenue": 120.0, "currency": "EUR"}
    row = {"message_id": f"{SOURCE}-{uuid.uuid4().hex}", "type": "track", "event": name,
           "anonymous_id": f"rt-{profile_id}", "properties": properties, "traits": {}, "context": {},
           "integrations": {}, "timestamp": at, "received_at": at, "source": SOURCE, "status": "processed",
           "profile_id": profile_id}  # fmt: skip
    session.connection().execute(sa.insert(Event.__table__), [row])  # type: ignore[attr-defined]
    if name == "Order Completed":
        refresh_profiles(session, [profile_id], now=at, zone=zone)
    session.commit()


def _sample(session: Session, count: int, seed: int = 7) -> list[str]:
    ids = list(
        session.connection().execute(sa.text("SELECT id FROM profile WHERE merged_into IS NULL")).scalars()
    )
    ids.sort()
    return random.Random(seed).sample(ids, count + WARMUP_PROFILES)


def _conditions(tenant: str) -> Any:
    """The segment condition types of the tenant's enabled plugins (as the processing job has them)."""
    from core.db.engines import control_session
    from core.plugins import get_host
    from core.segments.service import conditions_for
    from core.tenancy.plugin_settings import enabled_plugins
    from core.tenancy.tenants import get_tenant

    with control_session() as control:
        found = get_tenant(control, tenant)
        return conditions_for(frozenset(enabled_plugins(control, found, get_host())))


def _batch(session: Session, clock: Any, conditions: Any) -> tuple[float, int]:
    """Evaluate every segment in batch (seconds, memberships opened), then analyse what it wrote."""
    from core.segments.membership import refresh_all

    started = time.perf_counter()
    batch = refresh_all(session, clock, conditions)
    session.commit()
    seconds = time.perf_counter() - started
    # Autovacuum may be off on the benchmark's server: analyse as it would after the batch.
    session.connection().execute(sa.text("ANALYZE segment, segment_membership, internal_event"))
    session.commit()
    return seconds, len(batch.entered)


def _reevaluate_each(
    session: Session, engine: Any, sample: list[str], clock: Any, conditions: Any, zone: Any
) -> dict[str, Any]:
    """One new event, then one timed re-evaluation, per sampled profile (the first few warm up)."""
    from core.segments.membership import reevaluate

    totals, evaluations, changes = [], [], 0
    for index, profile_id in enumerate(sample):
        name = NEW_EVENTS[index % len(NEW_EVENTS)]
        _add_event(session, profile_id, name, clock.now - timedelta(minutes=1), zone)
        started = time.perf_counter()
        with Session(engine, expire_on_commit=False) as own:  # as after_profiles_changed does
            changed = reevaluate(own, [profile_id], clock, conditions)
            evaluated = time.perf_counter()
            own.commit()
        done = time.perf_counter()
        if index >= WARMUP_PROFILES:
            totals.append((done - started) * 1000)
            evaluations.append((evaluated - started) * 1000)
            changes += len(changed.entered) + len(changed.exited)
    return {"median_ms": statistics.median(totals), "p95_ms": percentile(totals, 0.95), "max_ms": max(totals),
            "evaluate_median_ms": statistics.median(evaluations), "profiles": len(totals),
            "changes": changes}  # fmt: skip


def realtime(tenant: str, now: datetime, profiles: int) -> dict[str, Any]:
    """Save the segments, evaluate them in batch, then time one re-evaluation per sampled profile."""
    from core.db.engines import tenant_engine
    from core.segments.clock import Clock
    from core.traits.jobs import tenant_zone

    database, zone = tenant_zone(tenant)
    conditions = _conditions(tenant)
    clock, engine = Clock.at(zone, now), tenant_engine(database)
    with Session(engine, expire_on_commit=False) as session:
        _cleanup(session)
        try:
            _create_segments(session, conditions)
            batch_s, opened = _batch(session, clock, conditions)
            sample = _sample(session, profiles)
            result = _reevaluate_each(session, engine, sample, clock, conditions, zone)
            memberships = session.connection().execute(
                sa.text("SELECT count(*) FROM segment_membership WHERE exited_at IS NULL")
            )
            held = int(memberships.scalar_one())
        finally:
            _cleanup(session)
    return {
        **result,
        "segments": len(SEGMENTS),
        "batch_s": batch_s,
        "batch_entries": opened,
        "memberships": held,
    }


def main() -> None:
    """Parse the options, run the job, print the JSON result."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("job", choices=("refit", "count", "realtime"))
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--now", required=True, type=datetime.fromisoformat)
    parser.add_argument("--runs", type=int, default=7, help="count: timed counts after the warm-up")
    parser.add_argument("--profiles", type=int, default=200, help="realtime: sampled profiles")
    parser.add_argument("--profile", metavar="FILE", help="write cProfile statistics here")
    args = parser.parse_args()
    import core.traits.clv  # noqa: F401  (numpy, scipy: not part of any timing)
    import core.traits.rfm  # noqa: F401
    import core.traits.summary  # noqa: F401
    from core.plugins import get_host

    get_host()  # loads the plugins, as a worker has
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    if args.job == "refit":
        result = refit(args.tenant, args.now)
    elif args.job == "count":
        result = count(args.tenant, args.now, args.runs)
    else:
        result = realtime(args.tenant, args.now, args.profiles)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
