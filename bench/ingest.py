"""Accepted events per second through the ingestion API: ``POST /v1/batch`` and ``POST /v1/track``.

Each run takes a fresh installation and tenant and a running server (embedded: ``tessera serve``
with its in-process worker; postgres+redis: ``tessera serve``, with ``--workers 2`` when it has
that option, beside ``tessera worker --processes 2``), so processing runs during ingestion as it
would in production. :mod:`bench.loadgen`, a separate process, keeps a fixed number of keep-alive
connections busy for a warm-up and then a measured window; only ``200`` answers count, for
batches by the ``accepted`` count they report. Medians over the runs are reported.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from bench.config import Config
from bench.installation import POSTGRES_REDIS, base_env, create_tenant, installation
from bench.processes import flags, run_module, running, serve_supports_workers
from bench.report import markdown_table, measured_line, number, progress
from bench.tenantdb import tenant_database

NAME = "ingest"
MODES = ("batch", "track")
BATCH_SIZE = 100
EVENTS_AIM = 50_000  # accepted events per second through /v1/batch
TRACK_AIM = 3_000  # requests per second through /v1/track ...
P99_AIM_MS = 50.0  # ... with a 99th percentile latency below this
WORKER_PROCESSES = 2
HEADERS = (
    "backend | request | web processes | connections | accepted | p50 (ms) | p99 (ms) | aim | "
    "throughput / aim | p99 / 50 ms | not 200 (all runs)"
).split(" | ")


def web_processes(backend: str) -> int:
    """2 web processes on postgres+redis when ``tessera serve --workers`` exists, else 1."""
    return 2 if backend == POSTGRES_REDIS and serve_supports_workers() else 1


@dataclass
class Sample:
    """One load-generator run (its JSON result) and the events left pending when it ended."""

    result: dict[str, Any]
    pending_after: int


def measure_once(backend: str, mode: str, connections: int, config: Config) -> Sample:
    """One run of ``mode`` (batch or track) on a fresh installation of ``backend``."""
    with installation(backend) as inst:
        tenant = create_tenant(inst)
        with (
            running(inst, web_processes(backend), WORKER_PROCESSES) as server,
            tenant_database(tenant.database_url) as db,
        ):
            args = flags(port=server.port, write_key=tenant.write_key, mode=mode, connections=connections,
                         warmup=config.warmup_s, duration=config.duration_s,
                         batch_size=BATCH_SIZE)  # fmt: skip
            timeout = config.warmup_s + config.duration_s + 120
            log = inst.data_dir / "loadgen.log"
            result = run_module("bench.loadgen", args, base_env(inst.data_dir), log, timeout)
            pending = db.status_counts()["pending"]
    return Sample(result, pending)


def _median(samples: list[Sample], key: str) -> float | None:
    values = [s.result[key] for s in samples if s.result[key] is not None]
    return statistics.median(values) if values else None


def _failures(samples: list[Sample]) -> str:
    statuses: dict[str, int] = {}
    errors = 0
    for sample in samples:
        errors += sample.result["connection_errors"]
        for status, count in sample.result["other_statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    parts = [f"{count:,} × {status}" for status, count in sorted(statuses.items())]
    if errors:
        parts.append(f"{errors:,} connection errors")
    return ", ".join(parts) or "0"


def connections_for(mode: str, config: Config) -> int:
    """The number of concurrent connections the load generator keeps for ``mode``."""
    return config.batch_connections if mode == "batch" else config.track_connections


def _row(backend: str, mode: str, samples: list[Sample], config: Config) -> list[str]:
    p50, p99 = _median(samples, "p50_ms"), _median(samples, "p99_ms")
    if mode == "batch":
        rate = _median(samples, "events_per_s") or 0.0
        request, accepted = f"`POST /v1/batch`, {BATCH_SIZE} events", f"{number(rate)} events/s"
        aim, ratio, p99_ratio = f"{number(EVENTS_AIM)} events/s", rate / EVENTS_AIM, "–"
    else:
        rate = _median(samples, "requests_per_s") or 0.0
        request, accepted = "`POST /v1/track`", f"{number(rate)} req/s"
        aim, ratio = f"{number(TRACK_AIM)} req/s, p99 < {P99_AIM_MS:.0f} ms", rate / TRACK_AIM
        p99_ratio = "–" if p99 is None else f"{p99 / P99_AIM_MS:.2f}"
    return [
        backend, request, str(web_processes(backend)), str(connections_for(mode, config)), accepted,
        number(p50, 1), number(p99, 1), aim, f"{ratio:.2f}", p99_ratio, _failures(samples),
    ]  # fmt: skip


def render(results: dict[tuple[str, str], list[Sample]], config: Config) -> list[str]:
    """The lines of the section (between its markers)."""
    rows = [_row(backend, mode, samples, config) for (backend, mode), samples in results.items()]
    share = max(s.result["generator_cpu_share"] for samples in results.values() for s in samples)
    pending = "; ".join(
        f"{backend} {mode} {number(statistics.median(s.pending_after for s in samples))}"
        for (backend, mode), samples in results.items()
    )
    if serve_supports_workers():
        web = "`tessera serve --workers 2` on postgres+redis (needs PostgreSQL and Redis), one on embedded"
    else:
        web = "one process everywhere (this `tessera serve` has no `--workers` option)"
    window = f"each {config.warmup_s:g} s of warm-up, then {config.duration_s:g} s measured"
    return [
        measured_line(f"median of {config.runs} run(s), {window}"),
        "",
        *markdown_table(HEADERS, rows, left=2),
        "",
        f"Web server: {web}. The load generator used at most {share:.0%} of one core.",
        f"Events still pending when the window closed (median): {pending}.",
    ]


def run(config: Config) -> list[str]:
    """Measure every configured backend and mode and return the section's lines."""
    results: dict[tuple[str, str], list[Sample]] = {(b, m): [] for b in config.backends for m in MODES}
    for attempt in range(config.runs):
        for backend, mode in results:
            sample = measure_once(backend, mode, connections_for(mode, config), config)
            r = sample.result
            latency = f"p50 {r['p50_ms'] or 0:.1f} ms, p99 {r['p99_ms'] or 0:.1f} ms"
            progress(
                f"ingest {backend} {mode} run {attempt + 1}: {r['events_per_s']:,.0f} events/s, "
                f"{r['requests_per_s']:,.0f} req/s, {latency}, not 200: {r['other_statuses'] or 0}, "
                f"connection errors: {r['connection_errors']}"
            )
            results[(backend, mode)].append(sample)
    return render(results, config)
