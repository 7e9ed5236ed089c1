"""Orchestration work done inside Tessera: run as a subprocess with the installation's environment.

``python -m bench.orchestrationjobs JOB --tenant SLUG [...]`` prints one JSON object. Tessera and
the plugins are imported before any clock starts, as in a worker that has done the work once.

- ``setup``: enable the recording channel (live) for the tenant with ``--endpoint`` and ``--api-key``
  (or ``--channel`` with the config in the JSON file ``--config``); save the segments the campaigns
  go to (:data:`SEGMENTS`).
- ``campaign``: create a campaign to the segment of every profile with an email and confirm it with :func:`core.campaigns.service.launch`, as the API does; the launch job then
  goes to the workers. Wall-clock times (``time.time()``) before the call and after the commit.
  ``campaign`` and ``batches`` send on ``--channel`` (default the recording channel) with
  ``--content`` (JSON; default :data:`CONTENT`).
- ``batches``: without a queue, a campaign to the profiles whose ``sample`` trait is true; its
  launch job and then each of its send jobs are run one after the other in this process with
  :func:`core.queue.actors.execute_job` (every job ends ``done``, so no sweeper re-sends them).
  The phases of :func:`core.delivery.sending.send_deliveries` are timed by wrapping the
  functions it calls: median milliseconds per job of each phase.
- ``journey-wait``: create and activate a journey entered by API: a wait of an hour, then
  ``--after`` (``update_trait``: set ``bench_done``, then exit; or ``exit`` at once). Enter every
  profile (in chunks of :data:`ENTER_CHUNK`, each one transaction through
  :func:`core.journeys.engine.enter_many`, as :func:`core.journeys.service.enter` does for one):
  they all wait on their timers. Seconds taken, entries made.
- ``journey-fire``: make every waiting entry due now and queue a timer job, in one transaction;
  the wall-clock time of the commit. The workers then advance them (the job fans out into shards).
- ``journey-event``: create and activate a journey entered by the track event ``--event``, whose
  first step sends on the recording channel a body carrying ``{{ event.token }}`` (the event's
  ``token`` property), then exits; re-entry always.
- ``client``: the recording channel's ``deliver`` alone (its HTTP client arrangement), no database:
  ``--threads`` threads of this process each deliver ``--batches`` batches of 200 messages to the
  provider at ``--endpoint``. Messages per second and the median milliseconds per batch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

CHANNEL = "recording_channel"
SEGMENTS = {"Everyone with an email": {"type": "trait", "key": "email", "op": "is set"},
            "Sample": {"type": "trait", "key": "sample", "op": "=", "value": True}}  # fmt: skip
ENTER_CHUNK = 2_000
CONTENT = {"variants": {"en": {"title": "Winter sale", "body": "Hello {{ traits.first_name }}, 20 % off today."}},
           "fallback": "en"}  # fmt: skip


def setup(tenant_slug: str, config: dict[str, Any], channel: str = CHANNEL) -> dict[str, Any]:
    """Enable ``channel`` in live mode with this config (the recording channel's: its endpoint and
    key); save the segments."""
    from sqlmodel import Session

    from core.db.engines import control_session, tenant_engine
    from core.plugins import get_host
    from core.segments.service import create_segment
    from core.tenancy.plugin_settings import save_channel_config, set_enabled
    from core.tenancy.tenants import get_tenant

    host = get_host()
    plugin = host.owner_of_channel(channel)
    if plugin is None:
        raise SystemExit(f"channel {channel!r} is not installed: is its plugin on PYTHONPATH?")
    with control_session() as control:
        tenant = get_tenant(control, tenant_slug)
        set_enabled(control, tenant, host, plugin, True, sandbox=False)
        save_channel_config(control, tenant, host, channel, config)
        control.commit()
        database = tenant.database
    with Session(tenant_engine(database)) as session:
        for name, rule in SEGMENTS.items():
            create_segment(session, name, rule, "bench", {})
        session.commit()
    return {"plugin": plugin}


def _context(tenant_slug: str) -> tuple[Any, Any]:
    """The tenant row and its scope (clock, channels), from the control database."""
    from core.db.engines import control_session
    from core.segments.service import tenant_scope
    from core.tenancy.tenants import get_tenant

    with control_session() as control:
        tenant = get_tenant(control, tenant_slug)
        return tenant, tenant_scope(control, tenant)


def _segment(session: Any, name: str) -> int:
    """The id of the segment named ``name`` (saved by ``setup``)."""
    from sqlmodel import select

    from core.segments.models import Segment

    return int(session.exec(select(Segment.id).where(Segment.name == name)).one())


def campaign(
    tenant_slug: str, name: str, channel: str = CHANNEL, content: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Create a campaign to every profile with an email and confirm it; the launch goes to the queue."""
    from sqlmodel import Session

    from core.campaigns import service as campaigns
    from core.db.engines import tenant_engine

    tenant, scope = _context(tenant_slug)
    with Session(tenant_engine(tenant.database), expire_on_commit=False) as session:
        segment = _segment(session, "Everyone with an email")
        data = campaigns.CampaignIn(
            name=name, segment_id=segment, channel=channel, content=content or CONTENT
        )
        created = campaigns.create_campaign(session, tenant, scope, data, "bench")
        session.commit()
        started = time.time()
        campaigns.launch(session, tenant, scope, created, "bench")
        session.commit()  # the launch job's message goes to Redis here
        confirmed = time.time()
    return {"campaign_id": created.id, "started_at": started, "confirmed_at": confirmed}


class PhaseTimer:
    """Wraps module functions so that each call adds its wall time to a per-job total by name."""

    def __init__(self) -> None:
        self.current: defaultdict[str, float] = defaultdict(float)
        self.jobs: list[dict[str, float]] = []

    def wrap(self, module: Any, attribute: str, phase: str) -> None:
        """Replace ``module.attribute`` by a timed version (the job code looks it up at call time)."""
        original: Callable[..., Any] = getattr(module, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.current[phase] += time.perf_counter() - started

        setattr(module, attribute, timed)

    def finish(self, total_s: float) -> None:
        """Close one job: its phases and its total, in milliseconds."""
        job = {phase: seconds * 1000 for phase, seconds in self.current.items()}
        job["other"] = total_s * 1000 - sum(job.values())
        job["total"] = total_s * 1000
        self.jobs.append(job)
        self.current = defaultdict(float)


# (function of core.delivery.sending, phase name); _write runs twice per job: prepared, then results.
PHASES = (("_due_rows", "load rows"), ("get_policy", "policy"), ("_routes", "channel and config"),
          ("_prepare", "recipients, render"), ("_write", "write rows"), ("_deliver", "deliver (HTTP)"))  # fmt: skip


def batches(
    tenant_slug: str, name: str, channel: str = CHANNEL, content: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A campaign to the sample profiles, its jobs run here one by one; median phase times per job."""
    from sqlmodel import Session, col, select

    from core.campaigns import service as campaigns
    from core.db.engines import tenant_engine
    from core.delivery import sending
    from core.delivery.outbox import SEND_DELIVERIES
    from core.queue.actors import execute_job
    from core.queue.models import Job, JobStatus

    tenant, scope = _context(tenant_slug)
    engine = tenant_engine(tenant.database)
    with Session(engine, expire_on_commit=False) as session:
        segment = _segment(session, "Sample")
        data = campaigns.CampaignIn(
            name=name, segment_id=segment, channel=channel, content=content or CONTENT
        )
        created = campaigns.create_campaign(session, tenant, scope, data, "bench")
        campaigns.launch(session, tenant, scope, created, "bench")
        session.commit()
        launch_job = session.exec(select(Job.id).where(Job.kind == campaigns.LAUNCH_CAMPAIGN,
                                                       Job.status == JobStatus.pending)).one()  # fmt: skip
    started = time.perf_counter()
    execute_job(tenant_slug, launch_job)
    launch_s = time.perf_counter() - started
    with Session(engine) as session:
        query = select(Job.id).where(Job.kind == SEND_DELIVERIES, Job.status == JobStatus.pending)
        jobs = list(session.exec(query.order_by(col(Job.id))))
    timer = PhaseTimer()
    for function, phase in PHASES:
        timer.wrap(sending, function, phase)
    for job_id in jobs:
        started = time.perf_counter()
        execute_job(tenant_slug, job_id)
        timer.finish(time.perf_counter() - started)
    measured = timer.jobs[1:] or timer.jobs  # the first job warms the connections and caches up
    phases = [phase for _, phase in PHASES] + ["other", "total"]
    medians = {phase: statistics.median(job.get(phase, 0.0) for job in measured) for phase in phases}
    return {"campaign_id": created.id, "jobs": len(jobs), "launch_s": launch_s, "median_ms": medians,
            "first_ms": timer.jobs[0]["total"] if timer.jobs else None}  # fmt: skip


def client(tenant_slug: str, endpoint: str, api_key: str, threads: int, batches: int) -> dict[str, Any]:
    """``threads`` threads each deliver ``batches`` batches of 200 through the channel's ``deliver``."""
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    from core.plugin_api import ChannelContext, DeliveryStatus, OutboundMessage, ProfileSnapshot
    from core.plugins import get_host

    channel = get_host().channels[CHANNEL].item
    config = channel.Config.model_validate({"endpoint": endpoint, "api_key": api_key})
    ctx = ChannelContext(tenant=tenant_slug, config=config, sandbox=False, sandbox_url="", public_url="")
    run = uuid.uuid4().hex[:8]

    def batch(thread: int, number: int) -> list[OutboundMessage]:
        return [OutboundMessage(delivery_id=str(i), idempotency_key=f"client:{run}:{thread}:{number}:{i}",
                                profile=ProfileSnapshot(id=f"p{i}"), address=f"c{i}@bench.example",
                                template={"title": "Hi", "body": f"Message {i}"}) for i in range(200)]  # fmt: skip

    channel.deliver(ctx, batch(-1, 0))  # opens the connections: not timed

    def work(thread: int) -> tuple[list[float], int]:
        seconds, sent = [], 0
        for number in range(batches):
            messages = batch(thread, number)
            started = time.perf_counter()
            results = channel.deliver(ctx, messages)
            seconds.append(time.perf_counter() - started)
            sent += sum(1 for r in results if r.status == DeliveryStatus.sent)
        return seconds, sent

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        done = list(pool.map(work, range(threads)))
    wall = time.perf_counter() - started
    per_batch = [s for seconds, _ in done for s in seconds]
    sent = sum(n for _, n in done)
    return {"threads": threads, "batches": len(per_batch), "sent": sent, "seconds": wall,
            "per_second": sent / wall, "median_batch_ms": statistics.median(per_batch) * 1000}  # fmt: skip


def _journey(tenant_slug: str, name: str, definition: dict[str, Any]) -> tuple[Any, Any, int]:
    """Create and activate a journey; (tenant, scope, journey id)."""
    from sqlmodel import Session

    from core.db.engines import tenant_engine
    from core.journeys import service as journeys

    tenant, scope = _context(tenant_slug)
    with Session(tenant_engine(tenant.database), expire_on_commit=False) as session:
        journey = journeys.create_journey(session, scope, journeys.JourneyIn(name=name, definition=definition),
                                          "bench")  # fmt: skip
        journeys.activate(session, tenant, scope, journey, "bench")
        session.commit()
        assert journey.id is not None
        return tenant, scope, journey.id


def journey_wait(tenant_slug: str, after: str) -> dict[str, Any]:
    """A journey waiting an hour then ``after``; every profile entered (a chunk per transaction)."""
    import sqlalchemy as sa
    from sqlmodel import Session

    from core.db.engines import tenant_engine
    from core.journeys.engine import Candidate, enter_many
    from core.journeys.models import Journey
    from core.journeys.run import Run, Runtime

    steps: dict[str, Any] = {"wait": {"type": "wait", "seconds": 3600, "next": "mark" if after != "exit" else "end"},
                             "end": {"type": "exit"}}  # fmt: skip
    if after != "exit":
        steps["mark"] = {"type": "update_trait", "trait": "bench_done", "value": True, "next": "end"}
    definition = {"trigger": {"type": "api"}, "start": "wait", "steps": steps}
    tenant, scope, journey_id = _journey(tenant_slug, f"Timers ({after})", definition)
    engine = tenant_engine(tenant.database)
    with engine.connect() as conn:
        profiles = list(
            conn.execute(sa.text("SELECT id FROM profile WHERE merged_into IS NULL ORDER BY id")).scalars()
        )
    started, entered = time.perf_counter(), 0
    for first in range(0, len(profiles), ENTER_CHUNK):
        with Session(engine, expire_on_commit=False) as session:
            journey = session.get(Journey, journey_id)
            run = Run(session, Runtime(tenant, scope))
            chunk = [Candidate(pid) for pid in profiles[first : first + ENTER_CHUNK]]
            entered += len(enter_many(run, journey, chunk))
            run.flush()
            session.commit()
    return {"journey_id": journey_id, "entered": entered, "seconds": time.perf_counter() - started}


def journey_fire(tenant_slug: str) -> dict[str, Any]:
    """Every waiting entry due now, and a timer job queued, in one transaction."""
    import sqlalchemy as sa
    from sqlmodel import Session

    from core.db.engines import tenant_engine
    from core.journeys.run import ADVANCE_TIMERS
    from core.queue.outbox import add_job

    tenant, _ = _context(tenant_slug)
    with Session(tenant_engine(tenant.database)) as session:
        fired = session.connection().execute(
            sa.text("UPDATE journey_entry SET due_at = now() WHERE state = 'waiting'")
        )
        add_job(session, tenant_slug, ADVANCE_TIMERS, {})
        session.commit()  # the job's message goes to Redis here
        return {"fired": fired.rowcount, "fired_at": time.time()}


def journey_event(tenant_slug: str, event: str) -> dict[str, Any]:
    """An event-triggered journey that sends the event's token on the recording channel."""
    content = {"variants": {"en": {"title": "Ping", "body": "Token {{ event.token }}"}}, "fallback": "en"}
    definition = {"trigger": {"type": "event", "event": event}, "start": "send",
                  "steps": {"send": {"type": "send", "channel": CHANNEL, "content": content, "next": "end"},
                            "end": {"type": "exit"}},
                  "reentry": {"mode": "always", "cooldown_hours": 0}}  # fmt: skip
    _, _, journey_id = _journey(tenant_slug, f"On {event}", definition)
    return {"journey_id": journey_id}


def main() -> None:
    """Parse the options, run the job, print the JSON result."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "job",
        choices=("setup", "campaign", "batches", "client", "journey-wait", "journey-fire", "journey-event"),
    )
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--channel", default=CHANNEL, help="setup, campaign, batches: the channel")
    parser.add_argument(
        "--config", help="setup: a JSON file with the channel's config (else --endpoint and --api-key)"
    )
    parser.add_argument(
        "--content", help="campaign, batches: the message content as JSON (else the recording channel's)"
    )
    parser.add_argument("--endpoint", help="setup, client: the provider's base URL")
    parser.add_argument("--api-key", help="setup, client: the provider's API key")
    parser.add_argument("--name", default="Benchmark", help="campaign, batches: the campaign's name")
    parser.add_argument("--threads", type=int, default=1, help="client: sending threads")
    parser.add_argument("--batches", type=int, default=10, help="client: batches of 200 per thread")
    parser.add_argument("--after", choices=("update_trait", "exit"), default="update_trait",
                        help="journey-wait: the step after the wait")  # fmt: skip
    parser.add_argument("--event", default="Bench Ping", help="journey-event: the triggering event")
    args = parser.parse_args()
    from core.plugins import get_host

    get_host()  # loads the plugins, as a worker has
    content = json.loads(args.content) if args.content else None
    if args.job == "setup":
        if args.config:
            with open(args.config) as file:
                config = json.load(file)
        else:
            config = {"endpoint": args.endpoint, "api_key": args.api_key}
        result = setup(args.tenant, config, args.channel)
    elif args.job == "campaign":
        result = campaign(args.tenant, args.name, args.channel, content)
    elif args.job == "journey-wait":
        result = journey_wait(args.tenant, args.after)
    elif args.job == "journey-fire":
        result = journey_fire(args.tenant)
    elif args.job == "journey-event":
        result = journey_event(args.tenant, args.event)
    elif args.job == "client":
        result = client(args.tenant, args.endpoint, args.api_key, args.threads, args.batches)
    else:
        result = batches(args.tenant, args.name, args.channel, content)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
