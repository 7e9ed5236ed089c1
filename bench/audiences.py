"""Audiences at scale (PostgreSQL): counting a segment, re-evaluating segments in real time, refitting.

The data set (:mod:`bench.audiencedata`): ``audience_profiles`` profiles and ``audience_events``
processed events, every profile a buyer; built once and kept between runs. On it, each in a
fresh process with the installation's environment (:mod:`bench.audiencejobs`), and with the
data set's reference time as the clock:

- refit: what :func:`core.traits.jobs.refit` does (read the purchases once,
  :func:`~core.traits.service.fit_models`, :func:`~core.traits.service.compute_all`, commit);
  median of ``audience_runs`` runs (wall time split into those steps; peak memory). Aim: under 60 s.
- segment count: the members of a three-condition segment (a trait, an event count in the last
  30 days, a computed trait) counted in SQL; median of ``audience_count_runs`` after a warm-up.
  Aim: under 1 s.
- real-time: 20 segments; for each of ``audience_realtime_profiles`` sampled profiles, one new
  event is stored, then every segment is re-evaluated for that profile (its data loaded
  included); median and 95th percentile. Aim: median under 5 ms.

The refit comes first: it fills the computed traits the segments read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.audiencedata import Dataset, dataset, vacuum
from bench.config import Config
from bench.processes import flags, run_module
from bench.report import markdown_table, measured_line, number, progress

NAME = "audiences"
REFIT_AIM_S = 60.0
COUNT_AIM_S = 1.0
REALTIME_AIM_MS = 5.0
JOB_TIMEOUT_S = 3600.0
REFIT_TABLES = ("computed_traits", "trait_fit")
REALTIME_TABLES = (
    "event",
    "computed_traits",
    "segment",
    "segment_membership",
    "segment_size",
    "internal_event",
)
HEADERS = "benchmark | size | median | aim | ratio to aim".split(" | ")


@dataclass
class Results:
    """What one section run measured (None: not measured)."""

    data: Dataset
    refits: list[dict[str, Any]]
    count: dict[str, Any] | None = None
    realtime: dict[str, Any] | None = None
    segments_missing: str | None = None  # why the segment benchmarks did not run


def _control(data: Dataset) -> str:
    assert data.installation.control_database is not None
    return data.installation.control_database


def _job(data: Dataset, job: str, **options: object) -> dict[str, Any]:
    """Run ``python -m bench.audiencejobs JOB`` against the data set; its JSON result."""
    inst = data.installation
    args = [job, *flags(tenant=data.tenant, now=data.now.isoformat(), **options)]
    return run_module("bench.audiencejobs", args, inst.env, inst.data_dir / f"{job}.log", JOB_TIMEOUT_S)


def measure_refits(data: Dataset, runs: int) -> list[dict[str, Any]]:
    """Refit ``runs`` times, each in a fresh process, on freshly vacuumed trait tables."""
    samples = []
    for attempt in range(runs):
        vacuum(_control(data), REFIT_TABLES)  # a refit replaces every row: as autovacuum would between two
        sample = _job(data, "refit")
        progress(f"audiences: refit {attempt + 1}: {sample['seconds']:.1f} s (read {sample['read_s']:.1f} s, "
                 f"fit {sample['fit_s']:.1f} s, score and write {sample['score_s']:.1f} s), {sample['buyers']:,} buyers, "
                 f"peak {sample['peak_rss_mib']:,.0f} MiB, {sample['status']}")  # fmt: skip
        samples.append(sample)
    vacuum(_control(data), REFIT_TABLES)  # before the segments read them
    return samples


def measure_segments(data: Dataset, config: Config) -> dict[str, dict[str, Any]]:
    """The segment count and the real-time re-evaluation (each job in a fresh process)."""
    count = _job(data, "count", runs=config.audience_count_runs)
    progress(f"audiences: count median {count['median_s'] * 1000:.0f} ms, {count['members']:,} members")
    realtime = _job(data, "realtime", profiles=config.audience_realtime_profiles)
    vacuum(_control(data), REALTIME_TABLES)  # what the run added was deleted again
    progress(f"audiences: real-time median {realtime['median_ms']:.2f} ms, p95 {realtime['p95_ms']:.2f} ms")
    return {"count": count, "realtime": realtime}


def segments_available() -> str | None:
    """None when the segment modules the benchmarks call exist, else what is missing."""
    import importlib.util

    for module in ("core.segments.rules", "core.segments.service", "core.segments.membership"):
        if importlib.util.find_spec(module) is None:
            return module
    return None


def _median_run(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return sorted(samples, key=lambda s: s["seconds"])[len(samples) // 2]


def _refit(results: Results) -> tuple[list[str], str]:
    """The refit's row and its note."""
    sample, runs = _median_run(results.refits), len(results.refits)
    peak = max(s["peak_rss_mib"] for s in results.refits)
    seconds = sample["seconds"]
    row = ["refit the lifetime-value models, write every buyer's traits", f"{number(sample['buyers'])} buyers",
           f"{seconds:.1f} s", f"{REFIT_AIM_S:.0f} s", f"{seconds / REFIT_AIM_S:.2f}"]  # fmt: skip
    note = (f"Refit: median of {runs} run(s); read and summarise the purchases {sample['read_s']:.1f} s, "
            f"fit {sample['fit_s']:.1f} s, score and write {sample['score_s']:.1f} s; peak memory {number(peak)} MiB; "
            f"{number(sample['repeat_buyers'])} repeat buyers.")  # fmt: skip
    if sample["status"] != "fitted":
        note += f" **The fit failed: {sample['status']}, {sample['message']}.**"
    return row, note


def _count(results: Results) -> tuple[list[str], str]:
    """The segment count's row and its note."""
    size, count = f"{number(results.data.profiles)} profiles", results.count
    name = "count a segment: trait, event count in 30 days, computed trait"
    if count is None:
        return [name, size, "–", "1 s", "–"], f"Count: not run, {results.segments_missing} is missing."
    median_s = count["median_s"]
    row = [name, size, f"{median_s * 1000:,.0f} ms", "1 s", f"{median_s / COUNT_AIM_S:.2f}"]
    note = (f"Count: {number(count['members'])} members; median of {count['runs']} counts after a warm-up "
            f"(the first took {count['first_s'] * 1000:,.0f} ms).")  # fmt: skip
    return row, note


def _realtime(results: Results) -> tuple[list[str], str]:
    """The real-time re-evaluation's row and its note."""
    name, realtime = "re-evaluate 20 segments for one profile after one event", results.realtime
    if realtime is None:
        return [name, "–", "–", "5 ms", "–"], f"Real time: not run, {results.segments_missing} is missing."
    median_ms = realtime["median_ms"]
    row = [name, f"{number(realtime['profiles'])} profiles", f"{median_ms:.2f} ms", "5 ms",
           f"{median_ms / REALTIME_AIM_MS:.2f}"]  # fmt: skip
    note = (f"Real time: p95 {realtime['p95_ms']:.2f} ms, max {realtime['max_ms']:.1f} ms; loading and deciding "
            f"(before the commit) median {realtime['evaluate_median_ms']:.2f} ms; "
            f"{number(realtime['changes'])} entries and exits. Before it, the batch evaluation of the "
            f"{realtime['segments']} new segments took {realtime['batch_s']:.1f} s "
            f"({number(realtime['batch_entries'])} memberships opened).")  # fmt: skip
    return row, note


def render(results: Results) -> list[str]:
    """The lines of the section (between its markers)."""
    data = results.data
    built = f"built in {data.build_seconds:.0f} s" + (" by an earlier run, kept" if data.reused else "")
    details = (f"PostgreSQL only; data set of {number(data.profiles)} profiles, {number(data.events)} events "
               f"({number(data.orders)} orders), {built}")  # fmt: skip
    parts = [_count(results), _realtime(results), _refit(results)]
    notes = [f"- {note}" for _, note in parts]
    return [
        measured_line(details),
        "",
        *markdown_table(HEADERS, [row for row, _ in parts], left=2),
        "",
        *notes,
    ]


def run(config: Config) -> list[str]:
    """Build or reuse the data set, refit, then the segment benchmarks; the section's lines."""
    with dataset(config.audience_profiles, config.audience_events, config.rebuild) as data:
        results = Results(data, measure_refits(data, config.audience_runs))
        results.segments_missing = segments_available()
        if results.segments_missing is None:
            measured = measure_segments(data, config)
            results.count, results.realtime = measured["count"], measured["realtime"]
        else:
            progress(f"audiences: segment benchmarks skipped: {results.segments_missing} is missing")
    return render(results)
