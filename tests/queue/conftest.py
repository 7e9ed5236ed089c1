"""The queue tests use the installed sample plugin's job type (see :mod:`tests.plugins_host.packages`)
and real worker processes (:mod:`tests.workers`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from sqlmodel import Session

from core.db.engines import control_session, tenant_engine
from core.plugins import get_host
from core.queue.broker import setup_broker
from core.queue.models import Job
from core.queue.outbox import add_job
from core.tenancy.plugin_settings import set_enabled
from core.tenancy.tenants import get_tenant
from tests.plugins_host.packages import plugin_packages, sample_plugin
from tests.workers import kill, redis_or_skip, workers

__all__ = ["plugin_packages", "sample_plugin", "sample_tenant", "workers"]

TENANT = "acme"


@dataclass(frozen=True)
class SampleTenant:
    """A PostgreSQL + Redis installation whose tenant ``acme`` has the sample channel enabled."""

    installation: Any
    queue: redis.Redis
    database: str
    slug: str = TENANT

    def touch(self, path: str, **payload: Any) -> Job:
        """A committed ``sample_channel.touch`` job (its message goes to Redis on commit)."""
        with Session(tenant_engine(self.database), expire_on_commit=False) as session:
            job = add_job(session, self.slug, "sample_channel.touch", {"path": path, **payload})
            session.commit()
        return job

    def job(self, job_id: int | None) -> Job:
        """The job's row as it is now."""
        with Session(tenant_engine(self.database)) as session:
            found = session.get(Job, job_id)
            assert found is not None
            return found


@pytest.fixture
def sample_tenant(make_installation, sample_plugin, workers) -> Iterator[SampleTenant]:
    """The installation, with Redis emptied before and after and the test's workers killed first."""
    installation = make_installation("postgres", redis=True)
    queue = redis_or_skip(installation.env["TESSERA_REDIS_URL"])
    queue.flushdb()
    # Bind the actor to this installation's broker: after the fixture's reset_broker(), nothing
    # else does before add_job's message is sent (see the report on core/queue/actors.py).
    assert type(setup_broker()).__name__ == "RedisBroker"
    try:
        database = installation.tenant(TENANT).tenant.database  # made on first use
        with control_session() as session:
            set_enabled(session, get_tenant(session, TENANT), get_host(), "sample_channel", True)
            session.commit()
        yield SampleTenant(installation, queue, database)
    finally:
        for worker in workers:
            kill(worker)
        workers.clear()
        queue.flushdb()  # leave no message of this installation for another test's worker
