"""One send's HTTP call: libcurl (``pycurl``) on an easy handle kept by each send thread.

A send holds its place under the number's limit from its start until a second after its end, so
the call's own time costs throughput. A pooled ``httpx`` client shared by a hundred threads cost
about a millisecond of CPU a call under its pool's lock, and calls waited for it; a thread's own
handle does the call in libcurl, outside the interpreter, and keeps its connection alive from one
send to the next.
"""

from __future__ import annotations

import threading
from io import BytesIO

import certifi
import httpx
import orjson
import pycurl

TIMEOUT_MS = 15_000
CONNECT_TIMEOUT_MS = 5_000
LONGEST_CALL = TIMEOUT_MS / 1000  # seconds: libcurl's timeout covers the whole call, connecting included

_local = threading.local()


class Unreachable(Exception):
    """No answer: the connection failed or timed out (libcurl's words)."""


def _handle() -> pycurl.Curl:
    """This thread's easy handle (and through it, its kept-alive connection)."""
    handle: pycurl.Curl | None = getattr(_local, "handle", None)
    if handle is None:
        handle = _local.handle = pycurl.Curl()
        handle.setopt(pycurl.NOSIGNAL, 1)  # timeouts without signals: we run in threads
        handle.setopt(pycurl.TIMEOUT_MS, TIMEOUT_MS)
        handle.setopt(pycurl.CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS)
        handle.setopt(pycurl.CAINFO, certifi.where())
    return handle


def post_json(url: str, body: object, headers: dict[str, str]) -> httpx.Response:
    """POST ``body`` as JSON; the answer as an ``httpx.Response`` (which the result parsing reads).

    Raises :class:`Unreachable` when no answer came.
    """
    handle, content = _handle(), BytesIO()
    lines: list[bytes] = []
    handle.setopt(pycurl.URL, url)
    handle.setopt(pycurl.POSTFIELDS, orjson.dumps(body))
    # "Expect:" off: libcurl would otherwise ask for a 100 Continue before larger bodies.
    sent = [f"{name}: {value}" for name, value in headers.items()]
    handle.setopt(pycurl.HTTPHEADER, [*sent, "Content-Type: application/json", "Expect:"])
    handle.setopt(pycurl.WRITEFUNCTION, content.write)
    handle.setopt(pycurl.HEADERFUNCTION, lines.append)
    try:
        handle.perform()
    except pycurl.error as exc:
        raise Unreachable(exc.args[-1] if exc.args else str(exc)) from exc
    answer_headers: list[tuple[str, str]] = []
    for line in lines:
        name, colon, value = line.decode("latin-1").partition(":")
        if line.startswith(b"HTTP/"):  # a new response (after a 100 Continue, say): its own headers
            answer_headers.clear()
        elif colon:
            answer_headers.append((name.strip(), value.strip()))
    return httpx.Response(
        handle.getinfo(pycurl.RESPONSE_CODE), headers=answer_headers, content=content.getvalue()
    )
