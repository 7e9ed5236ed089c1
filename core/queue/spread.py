"""The lane of ``spread`` job kinds: in each worker process, a worker of its own that takes one
message at a time, so such jobs started together run in different processes (on different cores)."""

from __future__ import annotations

import dramatiq

from core.queue.actors import SPREAD_QUEUE


class SpreadLane(dramatiq.Middleware):
    """Starts the lane's worker (one thread, one message held) when a process's main worker boots."""

    def __init__(self) -> None:
        self.worker: dramatiq.Worker | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Start the lane beside ``worker`` (once per process; not beside the lane itself)."""
        if self.worker is not None or worker is self.worker:
            return
        lane = dramatiq.Worker(broker, queues={SPREAD_QUEUE}, worker_threads=1)
        # Holding one message keeps a second one for the other processes.
        lane.queue_prefetch = lane.delay_prefetch = 1
        self.worker = lane
        lane.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Stop the lane with the main worker (running jobs finish first)."""
        lane, self.worker = self.worker, None
        if lane is not None and worker is not lane:
            lane.stop()
