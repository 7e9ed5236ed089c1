"""Identity resolution at scale: wall time and peak memory of folding a big backlog into profiles.

A fresh installation and tenant get ``resolution_events`` events of ``resolution_people`` people
(20 % of them browse on two devices, then log in on both; the rest use one), inserted straight
into the ``event`` table as pending (loading is not timed). A fresh process then runs the
processing job, :func:`core.profiles.jobs.process_events`, until nothing is pending
(:mod:`bench.runjob`); its wall time and peak resident memory are the figures. The outcome is
checked: there must be exactly one live (not merged-away) profile per person.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.config import Config
from bench.installation import create_tenant, installation
from bench.processes import flags, run_module
from bench.report import markdown_table, measured_line, number, progress
from bench.tenantdb import tenant_database

NAME = "resolution"
TIME_AIM_S = 120.0
MEMORY_AIM_MIB = 2048.0
TWO_DEVICE_SHARE = 0.2
PROGRESS_EVERY_S = 60.0
HEADERS = (
    "backend | events | people (two devices) | wall time (s) | peak memory (MiB) | live profiles | "
    "time / 2 min | memory / 2 GiB"
).split(" | ")


@dataclass
class Sample:
    """One run: the job's wall time and peak memory, and what it produced."""

    events: int
    people: int
    two_device_people: int
    seconds: float
    peak_rss_mib: float | None  # None when the job was stopped at the timeout
    handled: int  # events processed or failed
    failed: int
    live_profiles: int

    @property
    def finished(self) -> bool:
        """False when the job was stopped at the timeout."""
        return self.peak_rss_mib is not None

    @property
    def correct(self) -> bool:
        """Every event processed, none failed, one live profile per person."""
        return self.handled == self.events and self.failed == 0 and self.live_profiles == self.people


def measure_once(backend: str, config: Config, seed: int = 1) -> Sample:
    """Load the backlog into a fresh installation of ``backend`` and time the job over it."""
    events, people = config.resolution_events, config.resolution_people
    with installation(backend) as inst:
        tenant = create_tenant(inst)
        env = inst.env_without_queue()
        args = flags(tenant=tenant.slug, events=events, people=people, two_device_share=TWO_DEVICE_SHARE,
                     via="table", seed=seed, tag=f"r{seed}")  # fmt: skip
        loaded = run_module("bench.loader", args, env, inst.data_dir / "loader.log", 3600)
        progress(f"resolution {backend}: loaded {loaded['stored']:,} events in {loaded['seconds']:.0f} s")
        with tenant_database(tenant.database_url) as db:

            def report(elapsed: float) -> None:
                counts = db.status_counts()
                handled = counts["processed"] + counts["failed"]
                progress(f"resolution {backend}: {elapsed:.0f} s, {handled:,} of {events:,} events handled")

            args, log = flags(tenant=tenant.slug), inst.data_dir / "runjob.log"
            timeout = config.resolution_timeout_s
            try:
                job = run_module("bench.runjob", args, env, log, timeout, PROGRESS_EVERY_S, report)
            except TimeoutError:
                job = {"seconds": timeout, "peak_rss_mib": None}
            counts = db.status_counts()
            live, _ = db.profile_counts()
    return Sample(
        events=int(loaded["stored"]),
        people=int(loaded["people"]),
        two_device_people=int(loaded["two_device_people"]),
        seconds=float(job["seconds"]),
        peak_rss_mib=job["peak_rss_mib"],
        handled=counts["processed"] + counts["failed"],
        failed=counts["failed"],
        live_profiles=live,
    )


def _row(backend: str, sample: Sample) -> list[str]:
    people = f"{number(sample.people)} ({number(sample.two_device_people)})"
    if not sample.finished:
        share = f"{number(sample.handled)} of {number(sample.events)} events handled"
        return [backend, number(sample.events), people, f"stopped after {sample.seconds:.0f} ({share})", "–",
                number(sample.live_profiles), f"> {sample.seconds / TIME_AIM_S:.2f}", "–"]  # fmt: skip
    assert sample.peak_rss_mib is not None
    live = number(sample.live_profiles)
    if not sample.correct:
        live += f" **(expected {number(sample.people)}; {number(sample.failed)} failed)**"
    peak = sample.peak_rss_mib
    return [backend, number(sample.events), people, f"{sample.seconds:.1f}", number(peak), live,
            f"{sample.seconds / TIME_AIM_S:.2f}", f"{peak / MEMORY_AIM_MIB:.2f}"]  # fmt: skip


def render(results: dict[str, list[Sample]], config: Config) -> list[str]:
    """The lines of the section (between its markers); with several runs, the run of median time."""
    rows = []
    for backend, samples in results.items():
        rows.append(_row(backend, sorted(samples, key=lambda s: s.seconds)[len(samples) // 2]))
    runs = config.resolution_runs
    lines = [
        measured_line(f"{runs} run(s) per backend" + (", the one of median time shown" if runs > 1 else "")),
        "",
        *markdown_table(HEADERS, rows),
    ]
    wrong = sorted(
        {backend for backend, samples in results.items() for s in samples if s.finished and not s.correct}
    )
    if wrong:
        lines += [
            "",
            f"**Wrong outcome on {', '.join(wrong)}**: not one live profile per person, or events failed.",
        ]
    return lines


def run(config: Config) -> list[str]:
    """Measure every configured backend and return the section's lines."""
    results: dict[str, list[Sample]] = {backend: [] for backend in config.backends}
    for attempt in range(config.resolution_runs):
        for backend in config.backends:
            sample = measure_once(backend, config, seed=attempt + 1)
            peak = "stopped at the timeout" if not sample.finished else f"peak {sample.peak_rss_mib:,.0f} MiB"
            done = f"{sample.handled:,} of {sample.events:,} events in {sample.seconds:.1f} s"
            profiles = f"{sample.live_profiles:,} live profiles for {sample.people:,} people"
            progress(f"resolution {backend} run {attempt + 1}: {done}, {peak}, {profiles}")
            if sample.finished and not sample.correct:
                progress(f"!!! WRONG OUTCOME on {backend}: {profiles}, {sample.failed:,} events failed !!!")
            results[backend].append(sample)
    return render(results, config)
