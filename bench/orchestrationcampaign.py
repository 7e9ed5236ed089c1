"""Campaign measurements of the orchestration benchmark: one send job's phases, and whole campaigns."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import create_engine, text

from bench.orchestrationsetup import JOB_TIMEOUT_S, CpuMeter, Setup, cpu_text, wait_idle
from bench.processes import Running
from bench.report import progress

# How often a campaign's rows are counted while it runs: each count reads every row, and the times
# come from the fake's own records, so a slow look costs the system measured but not the figure.
CAMPAIGN_POLL_S = 1.0


@dataclass
class Accepted:
    """What a fake server accepted during a campaign (times are epoch seconds)."""

    first_at: float | None
    last_at: float | None
    accepted: int
    distinct: int  # distinct recipient addresses among the accepted messages
    attempts: int
    extra: dict[str, Any] = field(default_factory=dict)  # what else the fake tells (its own checks)


class CampaignFake(Protocol):
    """A fake provider a campaign sends to: emptied before, read after, its CPU measured."""

    @property
    def pid(self) -> int: ...

    def reset(self) -> None: ...

    def accepted(self) -> Accepted: ...


class ProviderFake:
    """The fake provider of :mod:`tests.fakes.provider` (the recording channel's) as a :class:`CampaignFake`."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup

    @property
    def pid(self) -> int:
        """The provider's process id."""
        return self.setup.provider_pid

    def reset(self) -> None:
        """Forget every message and attempt."""
        self.setup.provider.control("reset")

    def accepted(self) -> Accepted:
        """The accepted messages' first and last arrival, counts and distinct addresses."""
        recorded = self.setup.provider.recorded()
        received = [m["received_at"] for m in recorded["messages"]]
        return Accepted(min(received) if received else None, max(received) if received else None,
                        len(received), len({m["to"] for m in recorded["messages"]}),
                        len(recorded["attempts"]))  # fmt: skip


@dataclass
class CampaignSample:
    """One campaign: its times (seconds from the confirmation call) and what was checked."""

    recipients: int
    confirm_s: float  # the confirmation call: plan every recipient, add the launch job
    launched_s: float  # the launch job done: every delivery and send job written
    first_s: float  # the first message accepted by the provider
    last_s: float  # the last one
    accepted: int
    distinct: int  # distinct recipient addresses among the accepted messages
    attempts: int
    states: dict[str, int]
    send_jobs: int
    resent: int  # send jobs the sweeper queued again (unclaimed 30 s after being queued)
    cpu_s: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # the fake's own checks (:attr:`Accepted.extra`)

    @property
    def per_second(self) -> float:
        """Sends per second from the confirmation call to the last accepted message."""
        return self.accepted / self.last_s

    @property
    def sending_per_second(self) -> float:
        """Sends per second from the end of the launch job to the last accepted message."""
        return self.accepted / max(1e-9, self.last_s - self.launched_s)

    @property
    def exact(self) -> bool:
        """Every recipient accepted once and every delivery row sent."""
        sent = self.states.get("sent", 0)
        return self.accepted == self.distinct == self.recipients == sent == sum(self.states.values())


def _state(conn: Any, campaign_id: int) -> tuple[str, float | None, dict[str, int]]:
    """(status, the launch job's end as epoch seconds, deliveries by state) of a campaign."""
    status = conn.execute(text("SELECT status FROM campaign WHERE id = :c"), {"c": campaign_id}).scalar_one()
    finished = conn.execute(
        text("SELECT EXTRACT(EPOCH FROM finished_at) FROM job WHERE kind = 'core.launch_campaign' "
             "AND status = 'done' AND CAST(payload AS jsonb) ->> 'campaign_id' = :c"),
        {"c": str(campaign_id)},
    ).scalar()  # fmt: skip
    rows = conn.execute(
        text("SELECT state, count(*) FROM delivery WHERE campaign_id = :c AND NOT test GROUP BY state"),
        {"c": campaign_id},
    ).all()
    return str(status), float(finished) if finished is not None else None, {str(s): int(n) for s, n in rows}


def _send_jobs(conn: Any, since: float) -> tuple[int, int]:
    """(send jobs created since ``since``, how many of them the sweeper queued again)."""
    row = conn.execute(
        text("SELECT count(*), count(*) FILTER (WHERE enqueued_at > created_at + interval '5 seconds') "
             "FROM job WHERE kind = 'core.send_deliveries' AND created_at >= to_timestamp(:t)"),
        {"t": since},
    ).one()  # fmt: skip
    return int(row[0]), int(row[1])


def campaign_once(
    setup: Setup,
    server: Running,
    index: int,
    timeout_s: float = JOB_TIMEOUT_S,
    fake: CampaignFake | None = None,
    options: dict[str, Any] | None = None,
) -> CampaignSample:
    """Confirm a campaign to every recipient and wait until every delivery is written back.

    ``fake`` is where the messages go (the recording channel's provider unless given);
    ``options`` go to the ``campaign`` job (``channel``, ``content``).
    """
    fake = fake or ProviderFake(setup)
    wait_idle(setup.tenant.database_url)
    fake.reset()
    assert server.workers is not None
    meter = CpuMeter(server.workers.pid, fake.pid)
    started = setup.job("campaign", name=f"Benchmark {index}", **(options or {}))
    t0, campaign_id = started["started_at"], int(started["campaign_id"])
    engine = create_engine(setup.tenant.database_url)
    try:
        with engine.connect() as conn:
            while True:
                status, finished, states = _state(conn, campaign_id)
                conn.rollback()  # a fresh snapshot for the next look
                if finished is not None and status in ("sending", "completed") and not states.get("queued"):
                    break
                if time.time() - t0 > timeout_s:
                    raise TimeoutError(f"campaign {campaign_id} not sent after {timeout_s:.0f} s: {states}")
                time.sleep(CAMPAIGN_POLL_S)
            send_jobs, resent = _send_jobs(conn, t0)
    finally:
        engine.dispose()
    cpu = meter.used()
    got = fake.accepted()
    return CampaignSample(
        recipients=setup.recipients, confirm_s=started["confirmed_at"] - t0, launched_s=finished - t0,
        first_s=got.first_at - t0 if got.first_at is not None else float("nan"),
        last_s=got.last_at - t0 if got.last_at is not None else float("nan"), accepted=got.accepted,
        distinct=got.distinct, attempts=got.attempts, states=states, send_jobs=send_jobs, resent=resent,
        cpu_s=cpu, extra=got.extra,
    )  # fmt: skip


def per_batch(setup: Setup, what: str = "orchestration", **options: Any) -> dict[str, Any]:
    """Per-job phase times of a small campaign run in one process (no queue, no workers);
    ``options`` go to the ``batches`` job (``channel``, ``content``)."""
    result = setup.job("batches", env=setup.inst.env_without_queue(), name="Per batch", **options)
    phases = ", ".join(f"{k} {v:.0f}" for k, v in result["median_ms"].items())
    progress(f"{what}: per batch: launch job {result['launch_s']:.2f} s, {result['jobs']} send jobs, "
             f"median ms: {phases}")  # fmt: skip
    return result


def measure_campaigns(
    setup: Setup,
    server: Running,
    runs: int,
    fake: CampaignFake | None = None,
    options: dict[str, Any] | None = None,
    what: str = "orchestration",
) -> list[CampaignSample]:
    """``runs`` campaigns to everyone, one after the other (``fake``, ``options``: see :func:`campaign_once`)."""
    samples = []
    for index in range(runs):
        sample = campaign_once(setup, server, index + 1, fake=fake, options=options)
        progress(f"{what}: campaign {index + 1}: {sample.accepted:,} accepted in {sample.last_s:.1f} s "
                 f"= {sample.per_second:,.0f}/s (confirmed in {sample.confirm_s:.1f} s, launch job done at "
                 f"{sample.launched_s:.1f} s, first send at {sample.first_s:.1f} s); sending "
                 f"{sample.sending_per_second:,.0f}/s; {sample.states}; exact: {sample.exact}; "
                 f"{sample.send_jobs} send jobs, {sample.resent} re-sent by the sweeper; CPU {cpu_text(sample.cpu_s)}")  # fmt: skip
        samples.append(sample)
    return samples
