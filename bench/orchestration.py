"""Orchestration: campaigns and journeys sending through a channel plugin to a fake provider.

PostgreSQL + Redis only (whatever ``--backends`` says). One installation per section run
(:mod:`bench.orchestrationsetup`): the recording channel (the test plugin
``tests/plugins_host/recording_plugin``, pip-installed into a temporary folder on ``PYTHONPATH``)
enabled live, sending to the fake provider (:class:`tests.fakes.provider.ProviderProcess`, a
process of its own answering every send after 20 ms), and ``orchestration_recipients`` sendable
profiles written with ``COPY`` (:mod:`bench.orchestrationdata`). In order:

1. HTTP client: the channel's ``deliver`` alone, batches of 200 from 1 and 8 threads of one process.
2. One send job's phases (no workers yet): a campaign to one profile in 50; its launch job and
   send jobs run one after the other in one process (:mod:`bench.orchestrationcampaign`).
3. With ``tessera serve`` and ``tessera worker --processes 2 --threads T`` running, once no job is
   due: ``orchestration_runs`` campaigns to every profile, each confirmed with
   :func:`core.campaigns.service.launch` as the API does. Timed from the confirmation call to the
   last message the provider accepted; checked: every recipient accepted exactly once and every
   delivery row ``sent``. Aim: 2,000 sends per second.
4. Timers (:mod:`bench.orchestrationjourneys`): every profile enters a journey waiting an hour then
   ``orchestration_journey_after``; every timer is made due at once; timed until no entry waits.
5. Latency: ``orchestration_latency_events`` track events through ``POST /v1/track`` at
   ``orchestration_event_rate`` per second, each entering an event-triggered journey whose first
   step sends the event's token; from the request to the provider receiving that token. Aim: p99
   under 1 s.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import psutil

from bench.config import Config
from bench.orchestrationcampaign import CampaignSample, measure_campaigns, per_batch
from bench.orchestrationdata import SAMPLE_EVERY
from bench.orchestrationjourneys import (
    DELIVERY_WAIT_S,
    LatencySample,
    TimerSample,
    measure_latency,
    measure_timers,
)
from bench.orchestrationsetup import API_KEY, LATENCY_MS, Setup, cpu_text, prepared, wait_idle, worker_env
from bench.processes import running
from bench.report import markdown_table, measured_line, number, progress

NAME = "orchestration"
WORKER_PROCESSES = 2
SEND_AIM_PER_S = 2_000.0
LATENCY_P99_AIM_MS = 1_000.0
CLIENT_THREADS = (1, 8)
CLIENT_BATCHES = 10  # batches of 200 per thread
START_S = 6.0  # the workers' sweeper queues the periodic jobs on its first pass, 5 s after it starts
HEADERS = "measurement | size | median | aim | ratio to aim".split(" | ")


def measure_client(setup: Setup) -> list[dict[str, Any]]:
    """The channel's ``deliver`` alone against the provider, from 1 and 8 threads of one process."""
    results = []
    for threads in CLIENT_THREADS:
        result = setup.job("client", endpoint=setup.provider.url, api_key=API_KEY, threads=threads,
                           batches=CLIENT_BATCHES)  # fmt: skip
        progress(f"orchestration: client, {threads} thread(s): {result['per_second']:,.0f} messages/s, "
                 f"{result['median_batch_ms']:.0f} ms per batch of 200")  # fmt: skip
        results.append(result)
    setup.provider.control("reset")
    return results


def _median(samples: list[CampaignSample], key: str) -> float:
    return statistics.median(getattr(s, key) for s in samples)


def _campaign_rows(setup: Setup, samples: list[CampaignSample]) -> list[list[str]]:
    rate = _median(samples, "per_second")
    size = f"{number(setup.recipients)} recipients"
    return [
        ["campaign: confirmation to the last message accepted", size, f"{number(rate)} sends/s",
         f"{number(SEND_AIM_PER_S)} sends/s", f"{rate / SEND_AIM_PER_S:.2f}"],
        ["campaign: the confirmation call (plans every recipient)", size, f"{_median(samples, 'confirm_s'):.1f} s",
         "–", "–"],
        ["campaign: launch job done (deliveries and send jobs written)", size,
         f"{_median(samples, 'launched_s'):.1f} s", "–", "–"],
        ["campaign: sending, from the launch job done to the last message", size,
         f"{number(_median(samples, 'sending_per_second'))} sends/s", "–", "–"],
    ]  # fmt: skip


def _journey_rows(timers: TimerSample, latency: LatencySample) -> list[list[str]]:
    steps = "wait, set a trait, exit" if timers.after == "update_trait" else "wait, exit"
    p99 = latency.p99_ms if latency.latencies_ms else None
    return [
        [f"journey: timers fired at once, every entry advanced ({steps})", f"{number(timers.entries)} entries",
         f"{timers.seconds:.1f} s ({number(timers.per_second)}/s)", "–", "–"],
        ["journey: event in (`POST /v1/track`) to its message at the provider, p50",
         f"{number(latency.events)} events", f"{number(latency.p50_ms if p99 else None)} ms", "–", "–"],
        ["journey: the same, p99", f"{number(latency.events)} events", f"{number(p99)} ms",
         f"{number(LATENCY_P99_AIM_MS)} ms", f"{p99 / LATENCY_P99_AIM_MS:.2f}" if p99 else "–"],
    ]  # fmt: skip


def _notes(setup: Setup, measured: dict[str, Any]) -> list[str]:
    samples: list[CampaignSample] = measured["campaigns"]
    timers: TimerSample = measured["timers"]
    latency: LatencySample = measured["latency"]
    exact = all(s.exact for s in samples)
    checks = ("every recipient accepted exactly once by the provider and every delivery row `sent`, in every run"
              if exact else f"**not exact**: {[(s.accepted, s.distinct, s.states) for s in samples]}")  # fmt: skip
    cpu = {name: statistics.median(s.cpu_s.get(name, 0.0) for s in samples) for name in samples[0].cpu_s}
    batch = measured["batch"]
    medians = batch["median_ms"]
    phases = ", ".join(f"{name} {ms:.0f} ms" for name, ms in medians.items() if name != "total")
    client = "; ".join(f"{c['threads']} thread(s) {number(c['per_second'])} messages/s, "
                       f"{c['median_batch_ms']:.0f} ms per batch" for c in measured["client"])  # fmt: skip
    resent = max(s.resent for s in samples)
    return [
        f"- Campaigns: {checks}; provider attempts {number(max(s.attempts for s in samples))} (max); first message "
        f"accepted {_median(samples, 'first_s'):.1f} s after the confirmation call; "
        f"{number(samples[0].send_jobs)} send jobs, of which the sweeper queued again (unclaimed 30 s after "
        f"being queued) up to {number(resent)}.",
        f"- CPU during a campaign of {_median(samples, 'last_s'):.0f} s on {psutil.cpu_count()} cores (median): "
        f"{cpu_text(cpu)}.",
        f"- One send job of 200 deliveries run alone (median of {max(1, batch['jobs'] - 1)} jobs, campaign to "
        f"{number(setup.recipients // SAMPLE_EVERY)} profiles): {medians['total']:.0f} ms: {phases}. "
        f"Its launch job (plan and write {number(setup.recipients // SAMPLE_EVERY)} deliveries): "
        f"{batch['launch_s'] * 1000:.0f} ms.",
        f"- HTTP client of the recording channel (`deliver` alone, one process, batches of 200, provider "
        f"answering after {LATENCY_MS:.0f} ms): {client}.",
        f"- Timers: entering the {number(timers.entries)} profiles took {timers.enter_s:.0f} s (chunks of 2,000, "
        f"one process); after the last entry advanced, the work it set off was done at {timers.settled_s:.1f} s; "
        f"entries by state {timers.states}; CPU {cpu_text(timers.cpu_s)}.",
        f"- Latency: {number(latency.events)} events at {latency.rate:g}/s, each from another profile; "
        f"{number(latency.missing)} messages missing after {DELIVERY_WAIT_S:.0f} s; max "
        f"{number(max(latency.latencies_ms) if latency.latencies_ms else None)} ms; median split: request to the "
        f"delivery row written (ingest, processing, the journey's trigger and send step) "
        f"{number(latency.written_p50_ms)} ms, then to the provider (send job queued, claimed, rendered, sent) "
        f"{number(latency.sent_p50_ms)} ms.",
    ]


def render(setup: Setup, config: Config, measured: dict[str, Any]) -> list[str]:
    """The lines of the section (between its markers)."""
    prefetch = config.orchestration_prefetch or "dramatiq's default (2 × threads)"
    details = (f"PostgreSQL + Redis; `tessera worker --processes {WORKER_PROCESSES} --threads "
               f"{config.orchestration_threads}`, queue prefetch {prefetch}; fake provider answering after "
               f"{LATENCY_MS:.0f} ms; campaigns: median of {len(measured['campaigns'])}; load average "
               f"{measured['load']:.1f} at the start")  # fmt: skip
    rows = _campaign_rows(setup, measured["campaigns"]) + _journey_rows(
        measured["timers"], measured["latency"]
    )
    return [
        measured_line(details),
        "",
        *markdown_table(HEADERS, rows, left=2),
        "",
        *_notes(setup, measured),
    ]


def run(config: Config) -> list[str]:
    """Prepare the installation and measure, in order; the section's lines."""
    measured: dict[str, Any] = {"load": psutil.getloadavg()[0]}
    with prepared(config.orchestration_recipients) as setup:
        measured["client"] = measure_client(setup)
        measured["batch"] = per_batch(setup)
        inst = worker_env(setup.inst, config.orchestration_threads, config.orchestration_prefetch)
        with running(inst, worker_processes=WORKER_PROCESSES) as server:
            time.sleep(START_S)
            waited = wait_idle(setup.tenant.database_url)
            progress(f"orchestration: workers ready; their first jobs done after {waited:.1f} s more")
            measured["campaigns"] = measure_campaigns(setup, server, config.orchestration_runs)
            measured["timers"] = measure_timers(setup, server, config.orchestration_journey_after)
            measured["latency"] = measure_latency(
                setup, server, config.orchestration_latency_events, config.orchestration_event_rate
            )
    return render(setup, config, measured)
