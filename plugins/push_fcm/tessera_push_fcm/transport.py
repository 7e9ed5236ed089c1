"""The HTTP calls to FCM: libcurl's multi interface (``pycurl``), one per worker thread.

``deliver`` runs in worker threads, several at once in one process. Each thread drives its own
``CurlMulti`` over a pool of easy handles that keep their connections alive from batch to batch
(and use HTTP/2 where the server offers it, as Google does). The waiting happens in libcurl,
outside the interpreter. Measured against the fake FCM, a call costs about 0.08 ms of CPU; on one
``aiohttp`` event loop per process it cost 0.2–0.25 ms, and a pooled ``httpx`` client several
times that.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from io import BytesIO

import certifi
import httpx
import pycurl

MAX_CONNECTIONS = 64  # the most concurrency the config allows
TIMEOUT_MS = 20_000
CONNECT_TIMEOUT_MS = 5_000
WAIT_S = 1.0  # the longest wait for sockets before libcurl's own timers are looked at again


@dataclass(frozen=True)
class Post:
    """One POST to make: where, the JSON body, and the headers (``"Name: value"``)."""

    url: str
    body: bytes
    headers: list[str]


@dataclass(frozen=True)
class Answer:
    """What the server answered: its status, header lines and body."""

    status: int
    header_lines: list[bytes]
    content: bytes

    def response(self) -> httpx.Response:
        """The answer as an ``httpx.Response``, which the error parsing reads."""
        headers = []
        for line in self.header_lines:
            name, colon, value = line.decode("latin-1").partition(":")
            if colon and not name.startswith("HTTP/"):
                headers.append((name.strip(), value.strip()))
        return httpx.Response(self.status, headers=headers, content=self.content)


@dataclass(frozen=True)
class Unreachable:
    """No answer: the connection failed or timed out (libcurl's words)."""

    reason: str


@dataclass
class _Transfer:
    """A POST under way on one easy handle."""

    index: int
    body: BytesIO = field(default_factory=BytesIO)
    header_lines: list[bytes] = field(default_factory=list)

    def header(self, line: bytes) -> None:
        if line.startswith(b"HTTP/"):  # a new response (after a 100 Continue, say): its own headers
            self.header_lines.clear()
        self.header_lines.append(line)


class _Transfers:
    """This thread's multi handle and its idle easy handles (with their connections)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, MAX_CONNECTIONS)
        self.idle: list[pycurl.Curl] = []

    def handle(self) -> pycurl.Curl:
        """An idle easy handle, or a new one."""
        if self.idle:
            return self.idle.pop()
        handle = pycurl.Curl()
        handle.setopt(pycurl.NOSIGNAL, 1)  # timeouts without signals: we run in threads
        handle.setopt(pycurl.TIMEOUT_MS, TIMEOUT_MS)
        handle.setopt(pycurl.CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS)
        handle.setopt(pycurl.CAINFO, certifi.where())
        return handle


_local = threading.local()


def _transfers() -> _Transfers:
    """This thread's transfers (new ones after a fork: handles must not cross processes)."""
    found: _Transfers | None = getattr(_local, "transfers", None)
    if found is None or found.pid != os.getpid():
        found = _local.transfers = _Transfers()
    return found


def post_all(posts: list[Post], concurrency: int) -> list[Answer | Unreachable]:
    """Make every POST, ``concurrency`` at a time; each one's answer (or why none came), in order."""
    transfers = _transfers()
    multi = transfers.multi
    results: list[Answer | Unreachable | None] = [None] * len(posts)
    waiting = list(reversed(range(len(posts))))
    running: dict[pycurl.Curl, _Transfer] = {}
    while waiting or running:
        while waiting and len(running) < concurrency:
            handle, transfer = transfers.handle(), _Transfer(waiting.pop())
            post = posts[transfer.index]
            handle.setopt(pycurl.URL, post.url)
            handle.setopt(pycurl.POSTFIELDS, post.body)
            # "Expect:" off: libcurl would otherwise ask for a 100 Continue before larger bodies.
            handle.setopt(pycurl.HTTPHEADER, [*post.headers, "Expect:"])
            handle.setopt(pycurl.WRITEFUNCTION, transfer.body.write)
            handle.setopt(pycurl.HEADERFUNCTION, transfer.header)
            multi.add_handle(handle)
            running[handle] = transfer
        multi.perform()
        finished = 0
        while True:
            left, done, failed = multi.info_read()
            for handle in done:
                transfer = running.pop(handle)
                status = handle.getinfo(pycurl.RESPONSE_CODE)
                results[transfer.index] = Answer(status, transfer.header_lines, transfer.body.getvalue())
            for handle, _code, message in failed:
                results[running.pop(handle).index] = Unreachable(message)
            for handle in (*done, *(entry[0] for entry in failed)):
                multi.remove_handle(handle)
                transfers.idle.append(handle)
            finished += len(done) + len(failed)
            if not left:
                break
        if running and not finished:
            due_ms = multi.timeout()  # libcurl's next timer (-1: none), which a socket wait must not pass
            if due_ms != 0:
                wait = WAIT_S if due_ms < 0 else min(WAIT_S, due_ms / 1000)
                if any(multi.fdset()):
                    multi.select(wait)
                else:  # no socket yet (a name being resolved): select would return at once
                    time.sleep(min(wait, 0.01))
    return [result if result is not None else Unreachable("no answer") for result in results]
