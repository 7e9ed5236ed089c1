"""A per-number send limiter shared by every channel call in this process.

Meta counts messages per business phone number across all senders, so one limiter per
(API base URL, phone number id) is kept for the whole process. Several worker processes each
have their own limiters: give each process its share (``messages_per_second`` divided by the
number of processes sending for that number).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

# More than a second: Meta counts requests as they arrive, and requests sent 1 s apart may arrive
# closer than that when the network or this machine is busy (a 20 ms margin was seen to fall short).
# The cost: at most 91 % of the configured rate.
WINDOW = 1.1


class SlidingWindowLimiter:
    """At most ``rate`` acquisitions in any window of :data:`WINDOW` seconds."""

    def __init__(
        self,
        rate: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = max(1, rate)
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until one more message may be sent now, and count it."""
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and now - self._sent[0] >= WINDOW:
                    self._sent.popleft()
                if len(self._sent) < self.rate:
                    self._sent.append(now)
                    return
                wait = WINDOW - (now - self._sent[0])
            self._sleep(max(wait, 0.001))


_limiters: dict[tuple[str, str], SlidingWindowLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(base_url: str, phone_number_id: str, rate: int) -> SlidingWindowLimiter:
    """The process-wide limiter of one sending number (re-made if its rate changed)."""
    key = (base_url, phone_number_id)
    with _limiters_lock:
        found = _limiters.get(key)
        if found is None or found.rate != max(1, rate):
            found = _limiters[key] = SlidingWindowLimiter(rate)
        return found
