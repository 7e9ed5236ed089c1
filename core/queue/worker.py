"""Running workers: in this process (embedded default), or as dramatiq worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import dramatiq

from core.queue import actors  # noqa: F401 - declares the actor on the configured broker
from core.queue.broker import setup_broker
from core.queue.sweeper import Sweeper
from core.settings import get_settings


class InProcessWorker:
    """A dramatiq worker with threads in this process, plus the sweeper."""

    def __init__(self, threads: int | None = None):
        self.worker = dramatiq.Worker(setup_broker(), worker_threads=threads or get_settings().worker_threads)
        self.sweeper = Sweeper()

    def start(self) -> None:
        """Start consuming and sweeping."""
        self.worker.start()
        self.sweeper.start()

    def stop(self) -> None:
        """Stop consuming (waits for running jobs) and sweeping."""
        self.sweeper.stop()
        self.worker.stop()


def run_worker_processes(processes: int, threads: int) -> int:
    """Run dramatiq worker processes on Redis in the foreground, with a sweeper; the exit code."""
    sweeper = Sweeper()
    sweeper.start()
    command = [
        sys.executable, "-m", "dramatiq", "core.queue.worker_entry",
        "--processes", str(processes), "--threads", str(threads), "--queues", actors.QUEUE,
    ]  # fmt: skip
    # An idle consumer polls Redis every 100 ms instead of backing off to dramatiq's 1 s: a purchase
    # crosses two queues on its way to a wallet push, and each idle second showed in its latency.
    child = subprocess.Popen(command, env={"dramatiq_worker_timeout": "100", **os.environ})

    def forward(signum: int, _frame: object) -> None:
        # dramatiq's master stops its workers gracefully on SIGTERM/SIGINT; never orphan them.
        child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sweeper.stop()
