"""``tessera worker``'s processes log at ``TESSERA_LOG_LEVEL``, as every Tessera process does.

PostgreSQL + Redis, a real ``tessera worker`` and the pip-installed sample plugin's
``sample_channel.touch`` job: dramatiq's command line sets its worker processes to INFO, and
Tessera's worker module puts the operator's level back.
"""

from __future__ import annotations

import pytest

from core.queue.models import JobStatus
from tests.plugins_host.packages import subprocess_env
from tests.workers import kill, start_worker, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(180)]


@pytest.mark.parametrize(("level", "info_logged"), [("WARNING", False), ("INFO", True)])
def test_worker_processes_log_at_the_configured_level(
    level, info_logged, sample_tenant, workers, tmp_path
) -> None:
    job = sample_tenant.touch(str(tmp_path / "effect.txt"))
    log = tmp_path / "worker.log"
    env = subprocess_env(sample_tenant.installation.env, TESSERA_LOG_LEVEL=level)
    workers.append(start_worker(env, log, tmp_path))
    wait_until(lambda: sample_tenant.job(job.id).status == JobStatus.done, "the worker to run the job", log)
    kill(workers.pop())

    # dramatiq's worker processes say "ready for action" at INFO, after importing our module.
    lines = [line for line in log.read_text().splitlines() if "WorkerProcess(" in line]
    assert any("[INFO]" in line and "ready for action" in line for line in lines) is info_logged, lines
    assert any("[INFO]" in line for line in lines) is info_logged, lines
