"""Start-up time and idle memory of `tessera serve`, on the embedded default and on PostgreSQL + Redis.

Each run starts a fresh server process on a free port with an already-migrated installation
(one tenant), polls ``/healthz`` until it answers 200, then waits for the server to settle and
reads the resident memory of its process tree. Medians over the runs are reported.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from bench.config import Config
from bench.installation import EMBEDDED, TESSERA, create_tenant, installation
from bench.processes import free_port, spawn, stop, tree_rss_mib, wait_healthy
from bench.report import markdown_table, measured_line

NAME = "startup"
HEADERS = (
    "backend | start to healthy /healthz (s) | idle memory, process tree (MiB) | start ratio | memory ratio"
).split(" | ")


@dataclass
class Sample:
    """One server start: seconds until healthy, and idle resident memory in MiB."""

    startup_s: float
    idle_rss_mib: float


def measure_once(env: dict[str, str], log: Path, settle_s: float = 3.0) -> Sample:
    """Start `tessera serve`, time it to a healthy /healthz, read its idle memory, stop it."""
    port = free_port()
    started = time.perf_counter()
    server = spawn([TESSERA, "serve", "--port", str(port)], env, log)
    try:
        wait_healthy(port, server)
        startup = time.perf_counter() - started
        time.sleep(settle_s)
        return Sample(startup_s=startup, idle_rss_mib=tree_rss_mib(server.pid))
    finally:
        stop(server)


def run_backend(name: str, runs: int) -> list[Sample]:
    """Measure one backend ``runs`` times on a fresh installation."""
    with installation(name) as inst:
        create_tenant(inst)
        return [measure_once(inst.env, inst.data_dir / "serve.log") for _ in range(runs)]


def summarize(results: dict[str, list[Sample]]) -> list[dict[str, object]]:
    """Median start-up and memory per backend, with the ratio to the embedded default."""
    base = results.get(EMBEDDED) or next(iter(results.values()))
    base_start = statistics.median(s.startup_s for s in base)
    base_rss = statistics.median(s.idle_rss_mib for s in base)
    rows = []
    for name, samples in results.items():
        start = statistics.median(s.startup_s for s in samples)
        rss = statistics.median(s.idle_rss_mib for s in samples)
        rows.append(
            {
                "backend": name,
                "runs": len(samples),
                "startup_s": start,
                "idle_rss_mib": rss,
                "startup_ratio": start / base_start,
                "rss_ratio": rss / base_rss,
            }
        )
    return rows


def render(rows: list[dict[str, object]], runs: int) -> list[str]:
    """The lines of the section (between its markers)."""
    cells = [
        [str(r["backend"]), f"{r['startup_s']:.2f}", f"{r['idle_rss_mib']:.0f}", f"{r['startup_ratio']:.2f}",
         f"{r['rss_ratio']:.2f}"]
        for r in rows
    ]  # fmt: skip
    return [measured_line(f"median of {runs} runs"), "", *markdown_table(HEADERS, cells)]


def run(config: Config) -> list[str]:
    """Measure every configured backend and return the section's lines."""
    results = {name: run_backend(name, config.runs) for name in config.backends}
    return render(summarize(results), config.runs)
