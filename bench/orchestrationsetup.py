"""The orchestration benchmark's installation: the recording channel, the fake provider, recipients.

Also what every orchestration measurement uses: jobs run in a subprocess
(:mod:`bench.orchestrationjobs`), waiting until the workers have nothing to do, and the CPU time
each part of the system used meanwhile.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import create_engine, text

from bench.installation import POSTGRES_REDIS, ROOT, Installation, Tenant, create_tenant, installation
from bench.orchestrationdata import load_recipients
from bench.processes import flags, run_module
from bench.report import progress

CHANNEL = "recording_channel"
API_KEY = "bench-provider-key"
LATENCY_MS = 20.0  # the fake provider's answer time
POLL_S = 0.25
JOB_TIMEOUT_S = 1800.0
RECORDING_PLUGIN = ROOT / "tests" / "plugins_host" / "recording_plugin"


@dataclass
class Setup:
    """The installation (its environment with the plugin on ``PYTHONPATH``), tenant and provider."""

    inst: Installation
    tenant: Tenant
    provider: Any  # tests.fakes.provider.ProviderProcess
    recipients: int
    load_s: float

    def job(self, job: str, env: dict[str, str] | None = None, **options: object) -> dict[str, Any]:
        """Run ``python -m bench.orchestrationjobs JOB --tenant SLUG ...`` (the installation's
        environment unless ``env``); its JSON result."""
        args = [job, *flags(tenant=self.tenant.slug, **options)]
        log = self.inst.data_dir / f"orchestration-{job}.log"
        return run_module("bench.orchestrationjobs", args, env or self.inst.env, log, JOB_TIMEOUT_S)

    @property
    def provider_pid(self) -> int:
        """The fake provider's process id (its CPU time is measured)."""
        return int(self.provider._process.pid)  # noqa: SLF001 - ProviderProcess does not expose it


@contextmanager
def prepared(recipients: int) -> Iterator[Setup]:
    """A PostgreSQL + Redis installation with the recording channel live, its segments saved and
    ``recipients`` sendable profiles loaded; the fake provider running (20 ms per answer)."""
    from tests.fakes.provider import ProviderProcess
    from tests.plugins_host.packages import install_package

    with tempfile.TemporaryDirectory(prefix="tessera-bench-plugins-") as folder:
        plugins = install_package(RECORDING_PLUGIN, Path(folder) / "recording")
        with installation(POSTGRES_REDIS) as base:
            paths = [str(plugins), *filter(None, [base.env.get("PYTHONPATH")])]
            inst = replace(base, env={**base.env, "PYTHONPATH": ":".join(paths)})
            tenant = create_tenant(inst)
            with ProviderProcess(latency_ms=LATENCY_MS, api_key=API_KEY) as provider:
                setup = Setup(inst, tenant, provider, recipients, 0.0)
                setup.job("setup", endpoint=provider.url, api_key=API_KEY)
                setup.load_s = load_recipients(tenant.database_url, recipients, CHANNEL)
                progress(f"orchestration: {recipients:,} recipients loaded in {setup.load_s:.1f} s")
                yield setup


def worker_env(inst: Installation, threads: int, prefetch: int) -> Installation:
    """The installation with ``threads`` per worker process and dramatiq's queue prefetch (0: its default)."""
    env = {**inst.env, "TESSERA_WORKER_THREADS": str(threads)}
    if prefetch:
        env["dramatiq_queue_prefetch"] = str(prefetch)
    return replace(inst, env=env)


def wait_idle(database_url: str, timeout_s: float = 900.0, settle_s: float = 1.0) -> float:
    """Wait until no job of the tenant is due or running, twice ``settle_s`` apart (periodic jobs
    start a moment after the workers; after-commit work adds jobs); the seconds waited."""
    engine = create_engine(database_url)
    started = time.perf_counter()
    query = text(
        "SELECT count(*) FROM job WHERE status = 'running' OR (status = 'pending' AND due_at <= now())"
    )
    quiet = 0
    try:
        with engine.connect() as conn:
            while quiet < 2:
                busy = conn.execute(query).scalar_one()
                conn.rollback()  # a fresh snapshot for the next look
                quiet = 0 if busy else quiet + 1
                if time.perf_counter() - started > timeout_s:
                    raise TimeoutError(f"jobs still due or running after {timeout_s:.0f} s")
                time.sleep(settle_s if not busy else POLL_S)
    finally:
        engine.dispose()
    return time.perf_counter() - started


def _cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
        return float(times.user + times.system)
    except psutil.Error:
        return 0.0


class CpuMeter:
    """CPU seconds used by the workers, PostgreSQL, Redis, the provider and everything else on the
    machine (``others``: the web server, this benchmark and its job subprocesses, other work)."""

    def __init__(self, workers: int, provider: int):
        self.roots = {"workers": workers, "provider": provider}
        self.start = self.read()

    def read(self) -> dict[str, float]:
        """CPU seconds so far, per part (processes that ended meanwhile are not counted)."""
        totals: dict[str, float] = {}
        for name, pid in self.roots.items():
            try:
                root = psutil.Process(pid)
                totals[name] = sum(_cpu(p) for p in [root, *root.children(recursive=True)])
            except psutil.NoSuchProcess:
                totals[name] = 0.0
        for name, binary in (("postgres", "postgres"), ("redis", "redis-server")):
            totals[name] = sum(_cpu(p) for p in psutil.process_iter(["name"]) if p.info["name"] == binary)
        machine = psutil.cpu_times()
        totals["machine"] = machine.user + machine.nice + machine.system + machine.irq + machine.softirq
        return totals

    def used(self) -> dict[str, float]:
        """CPU seconds per part since this meter was made (``others``: the rest of the machine)."""
        now = self.read()
        used = {name: max(0.0, now[name] - self.start.get(name, 0.0)) for name in now}
        machine = used.pop("machine")
        used["others"] = max(0.0, machine - sum(used.values()))
        return used


def cpu_text(cpu: dict[str, float]) -> str:
    """``workers 12 s, postgres 3 s, ...``."""
    return ", ".join(f"{name} {seconds:.0f} s" for name, seconds in cpu.items())
