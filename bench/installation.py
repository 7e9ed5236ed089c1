"""A throw-away Tessera installation per benchmark run: environment, tenant, databases, clean-up.

*Embedded* is a temporary data folder (SQLite files; the in-process worker runs inside
``tessera serve``). *postgres+redis* adds ``TESSERA_DATABASE_URL`` (a PostgreSQL control database
named ``tessera_bench_<random>``; tenant databases get that name as a prefix) and
``TESSERA_REDIS_URL`` (Redis database 14, flushed before and after). Everything is removed when
the :func:`installation` block ends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TESSERA = str(Path(sys.executable).with_name("tessera"))
POSTGRES = os.environ.get("TESSERA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("TESSERA_BENCH_REDIS", "redis://127.0.0.1:6379/14")
DATABASE_PREFIX = "tessera_bench_"
EMBEDDED, POSTGRES_REDIS = "embedded", "postgres+redis"
BACKENDS = (EMBEDDED, POSTGRES_REDIS)


@dataclass(frozen=True)
class Installation:
    """Where one installation lives and the environment its processes run with."""

    backend: str
    data_dir: Path
    env: dict[str, str]
    control_database: str | None  # PostgreSQL only

    @property
    def uses_redis(self) -> bool:
        """True on postgres+redis: workers are separate ``tessera worker`` processes."""
        return self.backend == POSTGRES_REDIS

    def database_url(self, database: str) -> str:
        """The SQLAlchemy URL of a tenant database (its name as stored on the tenant row)."""
        if self.control_database is None:
            return f"sqlite:///{self.data_dir / 'tenants' / database}"
        return f"{_sqlalchemy(POSTGRES)}/{database}"

    def env_without_queue(self) -> dict[str, str]:
        """The environment minus ``TESSERA_REDIS_URL``: a process that must not send queue messages."""
        return {k: v for k, v in self.env.items() if k != "TESSERA_REDIS_URL"}


@dataclass(frozen=True)
class Tenant:
    """A tenant made for a benchmark: its slug, ingestion write key, database URL and API token."""

    slug: str
    write_key: str
    database_url: str
    api_token: str = ""  # for ``Authorization: Bearer`` on the JSON API


def _sqlalchemy(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def base_env(data_dir: Path) -> dict[str, str]:
    """This process's environment without any ``TESSERA_*`` setting, plus a data folder and quiet logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env.update({"TESSERA_DATA_DIR": str(data_dir), "TESSERA_LOG_LEVEL": "WARNING"})
    return env


@contextmanager
def installation(backend: str) -> Iterator[Installation]:
    """A fresh, empty installation of ``backend``; its databases and files are removed afterwards."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    with tempfile.TemporaryDirectory(prefix="tessera-bench-") as folder:
        data_dir = Path(folder)
        env = base_env(data_dir)
        control = None
        if backend == POSTGRES_REDIS:
            control = f"{DATABASE_PREFIX}{uuid.uuid4().hex[:8]}"
            env.update({"TESSERA_DATABASE_URL": f"{POSTGRES}/{control}", "TESSERA_REDIS_URL": REDIS})
            flush_redis()
        try:
            yield Installation(backend, data_dir, env, control)
        finally:
            if control is not None:
                drop_databases(control)
                flush_redis()


def create_tenant(inst: Installation, slug: str = "bench") -> Tenant:
    """Create a tenant (migrating the installation first) with ``tessera tenant create --json``."""
    command = [TESSERA, "tenant", "create", slug, "--admin-email", "bench@tessera.test",
               "--admin-password", "bench-password", "--json"]  # fmt: skip
    done = subprocess.run(command, env=inst.env, check=True, capture_output=True, text=True)
    created = json.loads(done.stdout)
    database_url = inst.database_url(created["tenant"]["database"])
    return Tenant(slug, created["write_key"], database_url, created.get("api_token", ""))


def drop_databases(prefix: str) -> None:
    """Drop every PostgreSQL database whose name starts with ``prefix`` (a ``tessera_bench_`` one)."""
    if not prefix.startswith(DATABASE_PREFIX):
        raise ValueError(f"refusing to drop databases not named {DATABASE_PREFIX}*")
    engine = create_engine(_sqlalchemy(POSTGRES) + "/postgres")
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            names = conn.execute(
                text("SELECT datname FROM pg_database WHERE datname LIKE :p"), {"p": prefix + "%"}
            )
            for (database,) in list(names):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    finally:
        engine.dispose()


def flush_redis() -> None:
    """Empty the benchmark's Redis database (db 14 unless ``TESSERA_BENCH_REDIS`` says otherwise)."""
    client = redis.Redis.from_url(REDIS)
    try:
        client.flushdb()
    finally:
        client.close()
