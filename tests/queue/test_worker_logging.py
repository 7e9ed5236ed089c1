"""``tessera worker``'s processes log at ``TESSERA_LOG_LEVEL``, as every Tessera process does.

PostgreSQL + Redis, a real ``tessera worker`` and the pip-installed sample plugin's
``sample_channel.touch`` job: dramatiq's command line sets its worker processes to INFO, and
Tessera's worker module puts the operator's level back.
"""

from __future__ import annotations

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


@pytest.mark.parametrize(("level", "info_logged"), [("WARNING", False), ("INFO", True)])
def test_worker_processes_log_at_the_configured_level(
    level, info_logged, make_installation, sample_plugin, workers, tmp_path
) -> None:
    installation = make_installation("postgres", redis=True)
    queue = redis_or_skip(installation.env["TESSERA_REDIS_URL"])
    queue.flushdb()
    assert type(setup_broker()).__name__ == "RedisBroker"
    try:
        database = installation.tenant(TENANT).tenant.database
        with control_session() as session:
            set_enabled(session, get_tenant(session, TENANT), get_host(), "sample_channel", True)
            session.commit()
        effect = tmp_path / "effect.txt"
        with Session(tenant_engine(database), expire_on_commit=False) as session:
            job = add_job(session, TENANT, "sample_channel.touch", {"path": str(effect)})
            session.commit()

        def done() -> bool:
            with Session(tenant_engine(database)) as session:
                found = session.get(Job, job.id)
                return found is not None and found.status == JobStatus.done

        log = tmp_path / "worker.log"
        workers.append(start_worker(subprocess_env(installation.env, TESSERA_LOG_LEVEL=level), log, tmp_path))
        wait_until(done, "the worker to run the job", log)
        kill(workers.pop())

        # dramatiq's worker processes say "ready for action" at INFO, after importing our module.
        lines = [line for line in log.read_text().splitlines() if "WorkerProcess(" in line]
        assert any("[INFO]" in line and "ready for action" in line for line in lines) is info_logged, lines
        assert any("[INFO]" in line for line in lines) is info_logged, lines
    finally:
        for worker in workers:
            kill(worker)
        workers.clear()
        queue.flushdb()
