"""The outbox survives a worker killed in the middle of a job, and the job's effect happens once.

PostgreSQL + Redis, with real ``tessera worker`` processes and the ``sample_channel.touch`` job
of the pip-installed sample plugin. The first worker is SIGKILLed while the handler sleeps
(after its ``.started`` marker, before its effect); Redis is flushed too, so the queue message is
gone with the worker. Only the job row is left, ``running`` under a lease that expires: the
sweeper of a new worker re-sends it, the new worker claims it, and the effect happens once.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session

from core.db.engines import control_session, tenant_engine
from core.plugins import get_host
from core.queue.broker import setup_broker
from core.queue.models import Job, JobStatus
from core.queue.outbox import add_job
from core.tenancy.plugin_settings import set_enabled
from core.tenancy.tenants import get_tenant
from tests.plugins_host.packages import subprocess_env
from tests.workers import kill, redis_or_skip, start_worker, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(180)]

TENANT = "acme"


def test_the_outbox_survives_a_killed_worker(make_installation, sample_plugin, workers, tmp_path) -> None:
    installation = make_installation("postgres", redis=True)
    queue = redis_or_skip(installation.env["TESSERA_REDIS_URL"])
    queue.flushdb()
    # Bind the actor to this installation's broker: after the fixture's reset_broker(), nothing
    # else does before add_job's message is sent (see the report on core/queue/actors.py).
    assert type(setup_broker()).__name__ == "RedisBroker"
    try:
        database = installation.tenant(TENANT).tenant.database
        with control_session() as session:
            set_enabled(session, get_tenant(session, TENANT), get_host(), "sample_channel", True)
            session.commit()

        effect = tmp_path / "effect.txt"
        started = Path(f"{effect}.started")
        with Session(tenant_engine(database), expire_on_commit=False) as session:
            job = add_job(session, TENANT, "sample_channel.touch", {"path": str(effect), "sleep": 3})
            session.commit()
        assert queue.dbsize() > 0  # the message went to Redis on commit

        def row() -> Job:
            with Session(tenant_engine(database)) as session:
                found = session.get(Job, job.id)
                assert found is not None
                return found

        env = subprocess_env(
            installation.env, TESSERA_JOB_LEASE_SECONDS="2", TESSERA_SWEEP_INTERVAL_SECONDS="0.5"
        )
        first_log, second_log = tmp_path / "worker-1.log", tmp_path / "worker-2.log"

        workers.append(start_worker(env, first_log, tmp_path))
        wait_until(started.exists, "the first worker to start the job", first_log)
        kill(workers[0])

        killed = row()
        assert killed.status == JobStatus.running and killed.attempts == 1
        assert not effect.exists() or effect.read_text() == "", "the effect happened before the kill"
        queue.flushdb()  # the message dies with the worker: only the job row is left
        started.unlink()

        workers.append(start_worker(env, second_log, tmp_path))
        wait_until(lambda: row().status == JobStatus.done, "the second worker to finish the job", second_log)

        assert started.exists()  # it ran again from the start...
        assert effect.read_text().splitlines() == [f"{TENANT} touched"]  # ...and its effect happened once
        done = row()
        assert done.attempts == 2 and done.last_error is None and done.lease_until is None
    finally:
        for worker in workers:
            kill(worker)
        workers.clear()
        queue.flushdb()  # leave no message of this installation for another test's worker
