"""Things made per second: on one core (this process) and on the whole machine (spawned processes).

A *maker* is an object whose ``make(index)`` makes the thing once (a signed pass, a save link);
``index`` varies what is made. The machine figure starts ``processes`` fresh interpreters, each
building its own maker from a picklable factory (a module-level class), warming up, then making
for the same seconds after a common barrier; their rates are added.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from typing import Any, Protocol

from bench.report import progress


class Maker(Protocol):
    """Makes one thing per call."""

    def make(self, index: int) -> Any: ...


def make_for(maker: Maker, seconds: float, first: int = 0) -> tuple[int, float, float, Any]:
    """Make things for ``seconds``: how many, the wall and CPU seconds taken, and the last thing made."""
    made, last = 0, None
    started, cpu = time.perf_counter(), time.process_time()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        last = maker.make(first + made)
        made += 1
    return made, time.perf_counter() - started, time.process_time() - cpu, last


def one_core(
    maker: Maker, runs: int, seconds: float, what: str, warmup: int
) -> tuple[list[float], list[float], Any]:
    """Things per second in this process and per CPU second it used, per run; the last thing made."""
    for index in range(warmup):
        maker.make(index)
    rates, cpu_rates, last = [], [], None
    for run in range(runs):
        made, elapsed, cpu, last = make_for(maker, seconds, first=run * 1_000_000)
        rates.append(made / elapsed)
        cpu_rates.append(made / cpu)
        progress(f"{what}: one core, run {run + 1}: {made:,} in {elapsed:.1f} s ({rates[-1]:,.0f}/s; "
                 f"{cpu_rates[-1]:,.0f} per CPU second)")  # fmt: skip
    return rates, cpu_rates, last


def _worker(
    factory: Callable[[], Maker], warmup: int, index: int, seconds: float, barrier: Any, results: Any
) -> None:
    """A spawned process: build a maker, warm up, wait for the others, make for ``seconds``; report back."""
    maker = factory()
    for member in range(warmup):
        maker.make(member)
    barrier.wait(timeout=120)
    made, elapsed, _, _ = make_for(maker, seconds, first=(index + 1) * 10_000_000)
    results.put((index, made, elapsed))


def whole_machine(
    factory: Callable[[], Maker], runs: int, seconds: float, processes: int, what: str, warmup: int
) -> list[float]:
    """Things per second of ``processes`` processes making at once (their rates added), per run."""
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as worker processes are
    rates = []
    for run in range(runs):
        barrier, results = context.Barrier(processes), context.Queue()
        workers = [
            context.Process(
                target=_worker, args=(factory, warmup, index, seconds, barrier, results), daemon=True
            )
            for index in range(processes)
        ]
        for worker in workers:
            worker.start()
        try:
            reports = [results.get(timeout=seconds + 180) for _ in workers]
        finally:
            for worker in workers:
                worker.join(timeout=30)
                if worker.is_alive():
                    worker.terminate()
        rates.append(sum(made / elapsed for _, made, elapsed in reports))
        counts = ", ".join(f"{made:,} in {elapsed:.1f} s" for _, made, elapsed in sorted(reports))
        progress(f"{what}: {processes} processes, run {run + 1}: {counts} ({rates[-1]:,.0f}/s)")
    return rates
