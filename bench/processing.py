"""Fully processed events per second: a backlog of pending events folded into profiles by the workers.

Each run takes a fresh installation and tenant, stores a backlog of journeys (see
:func:`bench.events.journeys`; a fifth as many people as events, 20 % of them on two devices)
with the ingest service while no worker runs, then starts ``tessera serve`` (embedded: its
in-process worker; postgres+redis: beside ``tessera worker --processes 2``), waits until they are
ready, sends one more event through ``POST /v1/track`` (its job starts the processing) and times
until no event of the tenant is pending. Medians over the runs are reported.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import httpx

from bench.config import Config
from bench.installation import EMBEDDED, Installation, Tenant, create_tenant, installation
from bench.processes import Running, flags, run_module, running
from bench.report import markdown_table, measured_line, number, progress
from bench.tenantdb import tenant_database

NAME = "processing"
AIM_PER_S = 10_000
WORKER_PROCESSES = 2
POLL_S = 0.1
HEADERS = (
    "backend | workers | events | failed (max) | time (s) | events/s | aim (events/s) | ratio to aim"
).split(" | ")


@dataclass
class Sample:
    """One run: events handled (processed + failed), how many failed, seconds until none pending."""

    events: int
    failed: int
    seconds: float

    @property
    def per_second(self) -> float:
        """Events processed per second."""
        return self.events / self.seconds


def load_backlog(inst: Installation, tenant: Tenant, events: int, seed: int) -> int:
    """Store ``events`` pending events (``events / 5`` people) with no worker running; how many."""
    args = flags(tenant=tenant.slug, events=events, people=max(1, events // 5), via="accept", seed=seed,
                 tag=f"p{seed}")  # fmt: skip
    loaded = run_module("bench.loader", args, inst.env_without_queue(), inst.data_dir / "loader.log", 3600)
    return int(loaded["stored"])


def trigger(server: Running, tenant: Tenant) -> None:
    """Send one event through the API: its processing job works through the whole backlog."""
    event = {"userId": "trigger-user", "event": "Benchmark Started", "properties": {}}
    answer = httpx.post(f"{server.url}/v1/track", json=event, auth=(tenant.write_key, ""), timeout=30)
    answer.raise_for_status()


def measure_once(backend: str, events: int, seed: int, timeout_s: float = 3600) -> Sample:
    """One run on a fresh installation of ``backend``."""
    with installation(backend) as inst:
        tenant = create_tenant(inst)
        stored = load_backlog(inst, tenant, events, seed)
        with (
            tenant_database(tenant.database_url) as db,
            running(inst, worker_processes=WORKER_PROCESSES) as server,
        ):
            started = time.perf_counter()
            trigger(server, tenant)
            while db.has_pending():
                if time.perf_counter() - started > timeout_s:
                    raise TimeoutError(f"events still pending after {timeout_s:.0f} s: {db.status_counts()}")
                time.sleep(POLL_S)
            seconds = time.perf_counter() - started
            counts = db.status_counts()
    handled = counts["processed"] + counts["failed"]
    if handled != stored + 1:
        progress(f"WARNING: {backend}: {stored} + 1 events stored but {handled} handled ({counts})")
    return Sample(events=handled, failed=counts["failed"], seconds=seconds)


def render(results: dict[str, list[Sample]], config: Config) -> list[str]:
    """The lines of the section (between its markers)."""
    rows = []
    for backend, samples in results.items():
        seconds = statistics.median(s.seconds for s in samples)
        rate = statistics.median(s.per_second for s in samples)
        workers = (
            "in-process, in `tessera serve`" if backend == EMBEDDED else "`tessera worker --processes 2`"
        )
        failed = number(max(s.failed for s in samples))
        rows.append([backend, workers, number(samples[0].events), failed, f"{seconds:.1f}", number(rate),
                     number(AIM_PER_S), f"{rate / AIM_PER_S:.2f}"])  # fmt: skip
    return [
        measured_line(
            f"median of {config.runs} run(s) of {config.processing_events:,} events"
            f" from {max(1, config.processing_events // 5):,} people"
        ),
        "",
        *markdown_table(HEADERS, rows, left=2),
    ]


def run(config: Config) -> list[str]:
    """Measure every configured backend and return the section's lines."""
    results: dict[str, list[Sample]] = {backend: [] for backend in config.backends}
    for attempt in range(config.runs):
        for backend in config.backends:
            sample = measure_once(backend, config.processing_events, seed=attempt + 1)
            progress(
                f"processing {backend} run {attempt + 1}: {sample.events:,} events in {sample.seconds:.1f} s"
                f" = {sample.per_second:,.0f}/s ({sample.failed} failed)"
            )
            results[backend].append(sample)
    return render(results, config)
