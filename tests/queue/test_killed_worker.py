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

from core.queue.models import JobStatus
from tests.plugins_host.packages import subprocess_env
from tests.workers import kill, start_worker, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(180)]


def test_the_outbox_survives_a_killed_worker(sample_tenant, workers, tmp_path) -> None:
    effect = tmp_path / "effect.txt"
    started = Path(f"{effect}.started")
    job = sample_tenant.touch(str(effect), sleep=3)
    queue = sample_tenant.queue
    assert queue.dbsize() > 0  # the message went to Redis on commit

    env = subprocess_env(
        sample_tenant.installation.env, TESSERA_JOB_LEASE_SECONDS="2", TESSERA_SWEEP_INTERVAL_SECONDS="0.5"
    )
    first_log, second_log = tmp_path / "worker-1.log", tmp_path / "worker-2.log"

    workers.append(start_worker(env, first_log, tmp_path))
    wait_until(started.exists, "the first worker to start the job", first_log)
    kill(workers[0])

    killed = sample_tenant.job(job.id)
    assert killed.status == JobStatus.running and killed.attempts == 1
    assert not effect.exists() or effect.read_text() == "", "the effect happened before the kill"
    queue.flushdb()  # the message dies with the worker: only the job row is left
    started.unlink()

    workers.append(start_worker(env, second_log, tmp_path))
    wait_until(
        lambda: sample_tenant.job(job.id).status == JobStatus.done,
        "the second worker to finish the job",
        second_log,
    )

    assert started.exists()  # it ran again from the start...
    assert effect.read_text().splitlines() == [
        f"{sample_tenant.slug} touched"
    ]  # ...and its effect happened once
    done = sample_tenant.job(job.id)
    assert done.attempts == 2 and done.last_error is None and done.lease_until is None
