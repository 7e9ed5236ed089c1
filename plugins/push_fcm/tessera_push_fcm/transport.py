"""The HTTP calls to FCM: one event loop thread per process with one ``aiohttp`` session.

``deliver`` runs in worker threads, several at once in one process. They hand their calls to this
loop (``asyncio.run_coroutine_threadsafe``), whose session keeps connections alive across batches
and threads. Measured here, a pooled ``httpx`` client spent most of its time in its connection
pool's bookkeeping under many threads; one loop sends several times more per CPU second.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import httpx
import orjson

MAX_CONNECTIONS = 64  # the most concurrency the config allows
TIMEOUT = aiohttp.ClientTimeout(total=20.0, connect=5.0)
BATCH_TIMEOUT = 300.0  # a safety net only: a worker thread must never wait forever

T = TypeVar("T")


class _Loop:
    """The event loop thread and the HTTP session of this process."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fcm-http", daemon=True)
        self.thread.start()
        self.session: aiohttp.ClientSession = self.run(self._open(), timeout=10)

    async def _open(self) -> aiohttp.ClientSession:
        # Made on the loop, which it belongs to.
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS), timeout=TIMEOUT)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = BATCH_TIMEOUT) -> T:
        """Run ``coroutine`` on the loop and wait for its result (cancelled if it takes too long)."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        """Close the session and stop the loop thread."""
        if self.loop.is_running():
            self.run(self.session.close(), timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)


_current: _Loop | None = None
_lock = threading.Lock()


def _loop() -> _Loop:
    """This process's loop (a new one after a fork: threads do not survive it)."""
    global _current
    with _lock:
        if _current is None or _current.pid != os.getpid():
            _current = _Loop()
            atexit.register(_current.close)
        return _current


def run_all(calls: list[Callable[[aiohttp.ClientSession], Awaitable[T]]], concurrency: int) -> list[T]:
    """Run every call on this process's loop, ``concurrency`` at a time; their results in order."""
    if not calls:
        return []
    loop = _loop()

    async def bounded() -> list[T]:
        slots = asyncio.Semaphore(concurrency)

        async def one(call: Callable[[aiohttp.ClientSession], Awaitable[T]]) -> T:
            async with slots:
                return await call(loop.session)

        return list(await asyncio.gather(*(one(call) for call in calls)))

    return loop.run(bounded())


@dataclass(frozen=True)
class Answer:
    """What the provider answered: its status, headers and body."""

    status: int
    headers: Mapping[str, str]
    content: bytes

    def response(self) -> httpx.Response:
        """The answer as an ``httpx.Response``, which the error parsing reads."""
        return httpx.Response(self.status, headers=list(self.headers.items()), content=self.content)


async def post(session: aiohttp.ClientSession, url: str, body: Any, token: str) -> Answer:
    """POST ``body`` as JSON with the bearer ``token``; the provider's answer.

    Raises ``aiohttp.ClientError`` or ``TimeoutError``.
    """
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with session.post(url, data=orjson.dumps(body), headers=headers) as answer:
        return Answer(answer.status, answer.headers, await answer.read())
