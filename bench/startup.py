"""Start-up time and idle memory of `tessera serve`, on the embedded default and on PostgreSQL + Redis.

Each run starts a fresh server process on a free port with an already-migrated installation
(one tenant), polls ``/healthz`` until it answers 200, then waits for the server to settle and
reads the resident memory of its process tree. Medians over the runs are reported.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
TESSERA = str(Path(sys.executable).with_name("tessera"))
POSTGRES = os.environ.get("TESSERA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("TESSERA_BENCH_REDIS", "redis://127.0.0.1:6379/14")


@dataclass
class Sample:
    """One server start: seconds until healthy, and idle resident memory in MiB."""

    startup_s: float
    idle_rss_mib: float


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tree_rss(pid: int) -> float:
    process = psutil.Process(pid)
    processes = [process, *process.children(recursive=True)]
    return sum(p.memory_info().rss for p in processes if p.is_running()) / 2**20


def _prepare(env: dict[str, str]) -> None:
    subprocess.run([TESSERA, "tenant", "create", "bench", "--admin-email", "bench@tessera.test",
                    "--admin-password", "bench-password", "--json"], env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


def measure_once(env: dict[str, str], settle_s: float = 3.0) -> Sample:
    """Start `tessera serve`, time it to a healthy /healthz, read its idle memory, stop it."""
    port = _free_port()
    started = time.perf_counter()
    server = subprocess.Popen([TESSERA, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = started + 60
        while time.perf_counter() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        else:
            raise RuntimeError("the server did not become healthy within 60 s")
        startup = time.perf_counter() - started
        time.sleep(settle_s)
        return Sample(startup_s=startup, idle_rss_mib=_tree_rss(server.pid))
    finally:
        server.terminate()
        server.wait(timeout=30)


def run_backend(name: str, runs: int) -> list[Sample]:
    """Measure one backend ``runs`` times on a fresh installation."""
    with tempfile.TemporaryDirectory() as data_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
        env.update({"TESSERA_DATA_DIR": data_dir, "TESSERA_LOG_LEVEL": "WARNING"})
        database = None
        if name == "postgres+redis":
            database = f"tessera_bench_{uuid.uuid4().hex[:8]}"
            env.update({"TESSERA_DATABASE_URL": f"{POSTGRES}/{database}", "TESSERA_REDIS_URL": REDIS})
        try:
            _prepare(env)
            return [measure_once(env) for _ in range(runs)]
        finally:
            if database:
                _drop_databases(database)


def _drop_databases(prefix: str) -> None:
    engine = create_engine(POSTGRES.replace("postgresql://", "postgresql+psycopg://") + "/postgres")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        names = conn.execute(
            text("SELECT datname FROM pg_database WHERE datname LIKE :p"), {"p": prefix + "%"}
        )
        for (db,) in list(names):
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
    engine.dispose()


def summarize(results: dict[str, list[Sample]]) -> list[dict[str, object]]:
    """Median start-up and memory per backend, with the ratio to the embedded default."""
    base = results["embedded"]
    base_start = statistics.median(s.startup_s for s in base)
    base_rss = statistics.median(s.idle_rss_mib for s in base)
    rows = []
    for name, samples in results.items():
        start = statistics.median(s.startup_s for s in samples)
        rss = statistics.median(s.idle_rss_mib for s in samples)
        rows.append({
            "backend": name, "runs": len(samples), "startup_s": start, "idle_rss_mib": rss,
            "startup_ratio": start / base_start, "rss_ratio": rss / base_rss,
        })  # fmt: skip
    return rows
