"""The outbox on the embedded default: a job row first, its queue message only after the commit.

The in-process broker (dramatiq's StubBroker) is inspected directly: each test drains the
messages it expects, so "nothing was sent" is checked, not assumed. Jobs are run by calling
:func:`execute_job` as the actor would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from queue import Empty
from typing import Any

import dramatiq
import pytest
from sqlmodel import Session, select

from core.db.engines import control_session, tenant_engine
from core.plugin_api import JobType, PermanentDeliveryError, TransientDeliveryError, hookimpl
from core.plugins import get_host
from core.queue import actors
from core.queue.broker import setup_broker
from core.queue.models import Job, JobStatus
from core.queue.outbox import (
    MAX_RESEND_INTERVAL,
    RESEND_AFTER,
    add_job,
    ensure_job,
    job_counts,
    next_resend,
    release_coalesced,
)
from core.queue.sweeper import sweep_once
from core.tenancy.plugin_settings import set_enabled
from core.tenancy.tenants import get_tenant

TENANT = "acme"
KIND = "probe.work"


@dataclass
class Probe:
    """A plugin with one job type whose handler records its calls and fails as told."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_with: Exception | None = None

    @hookimpl
    def register_jobs(self, register: Callable[[JobType], None]) -> None:
        register(JobType(key=KIND, handler=self.handle))

    def handle(self, tenant: str, payload: dict[str, Any]) -> None:
        assert tenant == TENANT
        self.calls.append(payload)
        if self.fail_with is not None:
            raise self.fail_with


@dataclass
class Outbox:
    database: str
    probe: Probe
    broker: dramatiq.Broker

    def session(self) -> Session:
        return Session(tenant_engine(self.database), expire_on_commit=False)

    def job(self, job_id: int | None) -> Job:
        with self.session() as session:
            job = session.get(Job, job_id)
            assert job is not None
            return job

    def update(self, job_id: int | None, **values: Any) -> None:
        with self.session() as session:
            job = session.get(Job, job_id)
            assert job is not None
            for name, value in values.items():
                setattr(job, name, value)
            session.add(job)
            session.commit()

    def update_all(self, **values: Any) -> None:
        with self.session() as session:
            for job in session.exec(select(Job)):
                for name, value in values.items():
                    setattr(job, name, value)
                session.add(job)
            session.commit()

    def add(self, payload: dict[str, Any] | None = None, **options: Any) -> Job:
        with self.session() as session:
            job = add_job(session, TENANT, KIND, payload or {}, **options)
            session.commit()
        return job

    def sent(self) -> list[tuple[str, tuple[Any, ...]]]:
        """The messages sent since the last call, as (queue, actor args); drains the queues."""
        out = []
        for name in (actors.QUEUE, f"{actors.QUEUE}.DQ"):
            queue = self.broker.queues[name]
            while True:
                try:
                    message = dramatiq.Message.decode(queue.get_nowait())
                except Empty:
                    break
                assert message.actor_name == "run_job"
                out.append((name, tuple(message.args)))
        return out


def run(job: Job) -> JobStatus | None:
    """Deliver the job's message to the actor's function, as a worker would."""
    assert job.id is not None
    return actors.execute_job(TENANT, job.id)


def aware(value: datetime | None) -> datetime:
    assert value is not None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@pytest.fixture
def outbox(request: pytest.FixtureRequest, make_installation) -> Outbox:
    """A tenant with the probe plugin enabled, on SQLite unless parametrized with a backend."""
    installation = make_installation(getattr(request, "param", "sqlite"))
    created = installation.tenant(TENANT)
    probe = Probe()
    host = get_host()
    assert not host.add(probe, "probe").broken
    with control_session() as session:
        set_enabled(session, get_tenant(session, TENANT), host, "probe", True)
        session.commit()
    broker = setup_broker()
    assert type(broker).__name__ == "StubBroker"
    box = Outbox(created.tenant.database, probe, broker)
    box.sent()
    return box


def test_the_message_is_sent_only_after_the_commit(outbox: Outbox) -> None:
    with outbox.session() as session:
        job = add_job(session, TENANT, KIND, {"n": 1})
        session.flush()
        assert job.id is not None and job.status == JobStatus.pending and job.enqueued_at is not None
        assert outbox.sent() == []  # written in the transaction, not announced yet
        session.commit()
    assert outbox.sent() == [(actors.QUEUE, (TENANT, job.id))]
    assert outbox.job(job.id).payload == {"n": 1}


@pytest.mark.parametrize(
    "outbox", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_jobs_added_together_are_all_sent_only_after_the_outermost_commit(outbox: Outbox) -> None:
    """Each add_job releases a savepoint, which SQLAlchemy reports as a commit; a message sent then
    could reach a worker before the row is visible, find no job, and leave it to the sweeper."""
    with outbox.session() as session:
        jobs = [add_job(session, TENANT, KIND, {"n": n}) for n in range(3)]
        with pytest.raises(RuntimeError), session.begin_nested():  # a savepoint of the caller's, undone
            session.add(Job(kind="other.write"))
            raise RuntimeError("undone")
        assert outbox.sent() == []
        session.commit()
    # All three, the ones before the undone savepoint too, and only once the rows are there.
    assert outbox.sent() == [(actors.QUEUE, (TENANT, job.id)) for job in jobs]


@pytest.mark.parametrize(
    "outbox", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_rolled_back_job_sends_nothing_and_leaves_no_row(outbox: Outbox) -> None:
    with outbox.session() as session:
        add_job(session, TENANT, KIND, {"n": 1})  # the transaction's first write
        session.flush()
        session.rollback()
        session.commit()  # a later commit of the same session must not send the forgotten job
    assert outbox.sent() == []
    assert job_counts(outbox.database)["pending"] == 0
    outbox.update_all(resend_at=datetime.now(UTC) - timedelta(minutes=5))
    assert sweep_once() == 0  # nothing for the sweeper to find either


def test_a_job_rolled_back_with_the_writes_before_it_leaves_nothing(outbox: Outbox) -> None:
    with outbox.session() as session:
        session.add(Job(kind="other.write"))  # the caller's own work, written first
        session.flush()
        add_job(session, TENANT, KIND, {"n": 1})
        session.rollback()
    assert outbox.sent() == []
    assert sum(job_counts(outbox.database).values()) == 0


def test_a_job_due_later_is_sent_delayed(outbox: Outbox) -> None:
    job = outbox.add(due_at=datetime.now(UTC) + timedelta(minutes=5))
    assert outbox.sent() == [(f"{actors.QUEUE}.DQ", (TENANT, job.id))]
    assert run(job) is None  # not due: nobody may claim it yet
    assert outbox.probe.calls == []


def test_execute_job_runs_the_handler_once_and_marks_it_done(outbox: Outbox) -> None:
    job = outbox.add({"n": 7})
    assert run(job) == JobStatus.done
    assert outbox.probe.calls == [{"n": 7}]
    done = outbox.job(job.id)
    assert done.status == JobStatus.done and done.attempts == 1
    assert done.finished_at is not None and done.lease_until is None and done.last_error is None

    assert run(job) is None  # a duplicate message does nothing
    assert outbox.probe.calls == [{"n": 7}]
    assert outbox.job(job.id).attempts == 1
    assert job_counts(outbox.database) == {"pending": 0, "running": 0, "done": 1, "failed": 0}


def test_a_transient_error_reschedules_with_backoff(outbox: Outbox) -> None:
    job = outbox.add()
    outbox.sent()
    outbox.probe.fail_with = TransientDeliveryError("rate limited", retry_after=30)
    before = datetime.now(UTC)
    assert run(job) == JobStatus.pending
    retried = outbox.job(job.id)
    assert retried.status == JobStatus.pending and retried.attempts == 1
    assert aware(retried.due_at) >= before + timedelta(seconds=30)  # Retry-After beats the 2 s backoff
    assert aware(retried.due_at) <= datetime.now(UTC) + timedelta(seconds=31)
    assert retried.lease_until is None and retried.finished_at is None
    assert retried.last_error == "TransientDeliveryError: rate limited"
    assert outbox.sent() == [(f"{actors.QUEUE}.DQ", (TENANT, job.id))]  # re-queued, delayed
    assert run(job) is None  # not due yet
    assert len(outbox.probe.calls) == 1


def test_backoff_grows_without_retry_after(outbox: Outbox) -> None:
    job = outbox.add()
    outbox.probe.fail_with = TransientDeliveryError("provider unavailable")
    delays = []
    for attempt in (1, 2, 3):
        start = datetime.now(UTC)
        assert run(job) == JobStatus.pending
        retried = outbox.job(job.id)
        assert retried.attempts == attempt
        delays.append((aware(retried.due_at) - start).total_seconds())
        outbox.update(job.id, due_at=datetime.now(UTC) - timedelta(seconds=1))  # let it be due now
    assert [round(d) for d in delays] == [2, 4, 8]


def test_a_transient_error_on_the_last_attempt_fails_the_job(outbox: Outbox) -> None:
    job = outbox.add(max_attempts=1)
    outbox.sent()
    outbox.probe.fail_with = TransientDeliveryError("still down")
    assert run(job) == JobStatus.failed
    assert outbox.job(job.id).status == JobStatus.failed
    assert outbox.sent() == []


def test_a_permanent_error_fails_the_job_with_its_reason(outbox: Outbox) -> None:
    job = outbox.add()
    outbox.sent()
    outbox.probe.fail_with = PermanentDeliveryError("invalid address", reason_code="bad_address")
    assert run(job) == JobStatus.failed
    failed = outbox.job(job.id)
    assert failed.status == JobStatus.failed and failed.attempts == 1
    assert failed.last_error == "PermanentDeliveryError: invalid address"
    assert failed.finished_at is not None and failed.lease_until is None
    assert outbox.sent() == []  # never retried
    assert run(job) is None
    assert len(outbox.probe.calls) == 1


def test_a_job_of_an_unknown_type_fails_without_retrying(outbox: Outbox) -> None:
    with outbox.session() as session:
        job = add_job(session, TENANT, "nobody.handles_this")
        session.commit()
    assert run(job) == JobStatus.failed
    assert "No installed plugin handles job type 'nobody.handles_this'" in (
        outbox.job(job.id).last_error or ""
    )


def test_the_idempotency_key_dedups(outbox: Outbox) -> None:
    with outbox.session() as session:
        first = add_job(session, TENANT, KIND, {"n": 1}, idempotency_key="order-42")
        again = add_job(session, TENANT, KIND, {"n": 2}, idempotency_key="order-42")
        assert again is first
        session.commit()
    later = outbox.add({"n": 3}, idempotency_key="order-42")  # another transaction, after the commit
    assert later.id == first.id and later.payload == {"n": 1}
    assert outbox.sent() == [(actors.QUEUE, (TENANT, first.id))]  # one job, one message
    with outbox.session() as session:
        assert len(session.exec(select(Job).where(Job.idempotency_key == "order-42")).all()) == 1
    other = outbox.add({"n": 4}, idempotency_key="order-43")
    assert other.id != first.id


def test_the_sweeper_resends_a_due_job_whose_message_was_lost(outbox: Outbox) -> None:
    job = outbox.add()
    outbox.sent()  # the message is lost
    assert sweep_once() == 0  # recently enqueued: its message may still be on its way
    assert outbox.sent() == []
    outbox.update(job.id, resend_at=datetime.now(UTC) - timedelta(seconds=1))
    assert sweep_once() == 1
    assert outbox.sent() == [(actors.QUEUE, (TENANT, job.id))]
    assert aware(outbox.job(job.id).resend_at) > datetime.now(UTC) + timedelta(seconds=25)  # not every pass
    assert sweep_once() == 0
    assert run(job) == JobStatus.done
    assert sweep_once() == 0 and outbox.probe.calls == [{}]


def test_a_job_waiting_behind_a_long_queue_is_sent_again_less_and_less_often(outbox: Outbox) -> None:
    """Sent again after as long again as it has waited since it was due: 30 s, 1, 2, 4 min... at
    most every 15 min. A paced campaign's send jobs wait minutes for their turn; sent again every
    30 s, each would put a message in the queue twice a minute for nothing."""
    now = datetime.now(UTC)
    assert next_resend(now, now) == now + RESEND_AFTER
    assert next_resend(now - timedelta(minutes=2), now) == now + timedelta(minutes=2)
    assert next_resend(now - timedelta(hours=3), now) == now + MAX_RESEND_INTERVAL
    job = outbox.add()
    outbox.sent()
    outbox.update(job.id, due_at=now - timedelta(minutes=4), resend_at=now - timedelta(seconds=1))
    assert sweep_once() == 1 and outbox.sent() == [(actors.QUEUE, (TENANT, job.id))]
    again = aware(outbox.job(job.id).resend_at) - datetime.now(UTC)
    assert timedelta(minutes=3, seconds=55) < again <= timedelta(minutes=4, seconds=1)
    assert sweep_once() == 0


def test_the_sweeper_does_not_resend_a_job_that_is_not_due(outbox: Outbox) -> None:
    job = outbox.add(due_at=datetime.now(UTC) + timedelta(hours=1))
    outbox.update(job.id, resend_at=datetime.now(UTC) - timedelta(hours=1))
    outbox.sent()
    assert sweep_once() == 0 and outbox.sent() == []


def test_the_sweeper_resends_a_running_job_whose_lease_expired(outbox: Outbox) -> None:
    job = outbox.add()
    outbox.sent()
    # A worker claimed it, then died: the row says running, with a lease (and, taken, no resend_at).
    outbox.update(job.id, status=JobStatus.running, attempts=1, resend_at=None,
                  lease_until=datetime.now(UTC) + timedelta(minutes=5))  # fmt: skip
    assert sweep_once() == 0  # the lease still holds: the worker may be alive
    assert run(job) is None  # and nobody else may take it
    outbox.update(job.id, lease_until=datetime.now(UTC) - timedelta(seconds=1))
    assert sweep_once() == 1
    assert outbox.sent() == [(actors.QUEUE, (TENANT, job.id))]
    assert run(job) == JobStatus.done
    done = outbox.job(job.id)
    assert done.status == JobStatus.done and done.attempts == 2
    assert outbox.probe.calls == [{}]


def test_a_job_running_longer_than_its_lease_keeps_it_and_runs_once(outbox: Outbox, monkeypatch) -> None:
    """The running worker renews the lease, so the sweeper never takes a live job for a dead one."""
    monkeypatch.setenv("TESSERA_JOB_LEASE_SECONDS", "1")
    from core.settings import reset_settings

    reset_settings()
    job = outbox.add({"n": 1})
    outbox.sent()
    seen_during_run: list[tuple[int, JobStatus | None]] = []

    def slow(tenant: str, payload: dict[str, Any]) -> None:
        import time

        outbox.probe.calls.append(payload)
        time.sleep(2.5)  # well past the 1 s lease
        seen_during_run.append((sweep_once(), actors.execute_job(TENANT, job.id or 0)))

    get_host().jobs[KIND] = type(get_host().jobs[KIND])("probe", JobType(key=KIND, handler=slow))
    assert run(job) == JobStatus.done
    assert seen_during_run == [(0, None)]  # nothing re-sent, nothing re-claimed while it ran
    assert outbox.probe.calls == [{"n": 1}]
    assert outbox.job(job.id).attempts == 1


# --- coalesced jobs: many writers, one queued job ---------------------------------------------
BOTH = pytest.mark.parametrize(
    "outbox", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def ensure(outbox: Outbox) -> int | None:
    with outbox.session() as session:
        job_id = ensure_job(session, TENANT, KIND)
        session.commit()
    return job_id


def release(outbox: Outbox, work_left: bool) -> bool:
    with outbox.session() as session:
        more = release_coalesced(session, KIND, lambda: work_left)
        session.commit()
    return more


@BOTH
def test_writers_share_one_job_until_it_releases_with_no_work_left(outbox: Outbox) -> None:
    first = ensure(outbox)
    assert first is not None and outbox.sent() == [(actors.QUEUE, (TENANT, first))]
    assert ensure(outbox) is None and ensure(outbox) is None  # queued already: nothing more
    assert outbox.sent() == []

    assert release(outbox, work_left=True) is True  # more arrived: the job goes on, still shared
    assert ensure(outbox) is None
    assert release(outbox, work_left=False) is False

    second = ensure(outbox)
    assert second is not None and second != first
    assert outbox.sent() == [(actors.QUEUE, (TENANT, second))]


@BOTH
def test_a_finished_or_failed_coalesced_job_frees_its_key(outbox: Outbox) -> None:
    job_id = ensure(outbox)
    assert run(outbox.job(job_id)) == JobStatus.done  # its handler never released: the runner does
    assert outbox.job(job_id).idempotency_key is None
    outbox.probe.fail_with = PermanentDeliveryError("bad", reason_code="x")
    failing = ensure(outbox)
    assert failing is not None and run(outbox.job(failing)) == JobStatus.failed
    assert ensure(outbox) is not None


@pytest.mark.postgres
@pytest.mark.parametrize("outbox", ["postgres"], indirect=True)
def test_the_release_waits_for_writers_that_found_the_job_queued(outbox: Outbox) -> None:
    assert ensure(outbox) is not None
    writer = outbox.session()
    assert ensure_job(writer, TENANT, KIND) is None  # holds the shared lock until it commits
    answers: list[bool] = []
    releaser = threading.Thread(target=lambda: answers.append(release(outbox, work_left=False)))
    releaser.start()
    releaser.join(0.5)
    assert releaser.is_alive() and answers == []  # waiting for the writer
    writer.commit()
    writer.close()
    releaser.join(10)
    assert answers == [False]
