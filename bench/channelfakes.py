"""The plugins' own fakes (FCM, WhatsApp Cloud API) served in a process of their own, timed and counted.

``python -m bench.channelfakes {fcm,whatsapp} --port N --latency-ms 20 [--rate-limit R]`` serves
the plugin's fake (:func:`tessera_push_fcm.sandbox.create_sandbox_app`,
:class:`tessera_whatsapp.sandbox.FakeWhatsApp`) with uvicorn, every send answered after the
latency (the fake's own setting), behind a thin ASGI wrapper that notes each send call's arrival,
answer time and status. The wrapper adds:

- ``GET /_bench/health``;
- ``POST /_bench/reset``: forget every send (FCM: the fake's reset, issued access tokens stay
  valid; WhatsApp: a fresh fake with the same latency and rate limit), latency set again;
- ``GET /_bench/summary``: the sends answered 200 (count, first and last answer time, distinct
  addresses, addresses sent more than once), every attempt by status, and the fake's own
  counters (WhatsApp: ``max_per_second()``, the most sends arriving in any one second, and
  ``rate_limited``, its 130429 refusals).

:class:`FakeServer` starts, reads and stops such a process from the benchmark.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

import httpx

from bench.installation import ROOT
from bench.orchestrationcampaign import Accepted

FCM, WHATSAPP = "fcm", "whatsapp"
# The fakes keep every request: left to the collector, a heap of 100,000 requests takes pauses of a
# tenth of a second, during which arrivals queue up and are then stamped together (a burst nobody
# sent). Frozen, what was kept is no longer scanned.
FREEZE_EVERY = 1_000
SEND_PATHS = {FCM: re.compile(r"^/v1/projects/[^/]+/messages:send$"),
              WHATSAPP: re.compile(r"^/v\d+\.\d+/\d+/messages$")}  # fmt: skip


def _json(send: Any, status: int, body: bytes) -> Any:
    async def respond() -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    return respond()


class TimedFake:
    """The ASGI app: the plugin's fake behind a recorder of its send calls."""

    def __init__(self, kind: str, latency_s: float, rate_limit: int) -> None:
        self.kind, self.latency_s, self.rate_limit = kind, latency_s, rate_limit
        self.lock = threading.Lock()
        self.sends: list[tuple[float, float, int]] = []  # (arrival, answer, status) of each send call
        self.fake: Any = None
        self.app: Any = None
        self.fresh(first=True)

    def fresh(self, first: bool = False) -> None:
        """A fake with nothing sent (FCM: the same app, reset; WhatsApp: a new one)."""
        if self.kind == FCM:
            if first:
                from tessera_push_fcm.sandbox import create_sandbox_app

                self.app = create_sandbox_app()
                self.fake = self.app.state.fcm
            self.fake.reset()  # also sets the latency to 0
            self.fake.delay = self.latency_s
        else:
            from tessera_whatsapp.sandbox import FakeWhatsApp

            self.fake = FakeWhatsApp(rate_limit=self.rate_limit, latency=self.latency_s)
            self.app = self.fake.app
        with self.lock:
            self.sends = []

    def summary(self) -> dict[str, Any]:
        """What was answered, and the fake's own counters."""
        with self.lock:
            sends = list(self.sends)
        ok = sorted(answer for _, answer, status in sends if status == 200)
        if self.kind == FCM:
            with self.fake.lock:
                addresses = [str(s["message"].get("token")) for s in self.fake.sent]
            extra: dict[str, Any] = {
                "tokens_issued": self.fake.tokens_issued,
                "max_in_flight": self.fake.max_in_flight,
            }
        else:
            addresses = [str(s["body"].get("to")) for s in list(self.fake.sent)]
            extra = {"max_per_second": self.fake.max_per_second(), "rate_limited": self.fake.rate_limited,
                     "rate_limit": self.fake.rate_limit, "requests": len(self.fake.request_times)}  # fmt: skip
        counts = Counter(addresses)
        # A stalled job (a lost queue message, say) shows as a pause in the answers, not in the rate.
        extra["longest_pause_s"] = max((b - a for a, b in zip(ok, ok[1:], strict=False)), default=0.0)
        extra.update(
            statuses={str(k): v for k, v in sorted(Counter(status for _, _, status in sends).items())},
            fake_sent=len(addresses), repeated=sum(n - 1 for n in counts.values() if n > 1),
            addresses=sorted(counts) if len(counts) <= 1_000_000 else [],
        )  # fmt: skip
        return {"first_at": ok[0] if ok else None, "last_at": ok[-1] if ok else None, "accepted": len(ok),
                "distinct": len(counts), "attempts": len(sends), "extra": extra}  # fmt: skip

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path.startswith("/_bench/"):
            import json

            if path == "/_bench/reset":
                self.fresh()
            body = json.dumps(self.summary() if path == "/_bench/summary" else {"ok": True}).encode()
            await _json(send, 200, body)
            return
        if scope["method"] != "POST" or not SEND_PATHS[self.kind].match(path):
            await self.app(scope, receive, send)
            return
        arrival, status = time.time(), 0

        async def noting(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                with self.lock:
                    self.sends.append((arrival, time.time(), status))
                    if len(self.sends) % FREEZE_EVERY == 0:
                        gc.freeze()
            await send(message)

        await self.app(scope, receive, noting)


def free_port() -> int:
    """A TCP port of 127.0.0.1 free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeServer:
    """One fake in a process of its own: ``with FakeServer("fcm", 20.0) as fake: fake.url``.

    A :class:`bench.orchestrationcampaign.CampaignFake`: ``reset()``, ``accepted()``, ``pid``.
    """

    def __init__(self, kind: str, latency_ms: float, rate_limit: int = 0) -> None:
        self.kind = kind
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [sys.executable, "-m", "bench.channelfakes", kind, "--port", str(self.port),
                        "--latency-ms", str(latency_ms), "--rate-limit", str(rate_limit)]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The fake's process id (its CPU time is measured)."""
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> FakeServer:
        self.process = subprocess.Popen(self.command, cwd=ROOT, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.url}/_bench/health", timeout=1).raise_for_status()
                return self
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.__exit__()
                    raise RuntimeError(f"the fake did not start: {self.command}") from None
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """POST to the fake (its own ``/_sandbox/...`` controls)."""
        return httpx.post(f"{self.url}{path}", json=body, timeout=30).raise_for_status()

    def reset(self) -> None:
        """Forget every send."""
        httpx.post(f"{self.url}/_bench/reset", timeout=30).raise_for_status()

    def summary(self) -> dict[str, Any]:
        """``GET /_bench/summary``."""
        return dict(httpx.get(f"{self.url}/_bench/summary", timeout=120).raise_for_status().json())

    def accepted(self) -> Accepted:
        """What the fake accepted since the last reset."""
        found = self.summary()
        return Accepted(found["first_at"], found["last_at"], found["accepted"], found["distinct"],
                        found["attempts"], found["extra"])  # fmt: skip


def main() -> None:
    """Serve one fake until stopped."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=(FCM, WHATSAPP))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--rate-limit", type=int, default=0, help="WhatsApp: sends per number per second")
    args = parser.parse_args()
    # The fake stands for a provider on machines of its own, and its clock stamps the arrivals the
    # figures are made of: ahead of the workers sharing these cores (when allowed), it is not held
    # up by them and its stamps stay close to the arrivals.
    with contextlib.suppress(OSError):
        os.nice(-10)
    app = TimedFake(args.kind, args.latency_ms / 1000, args.rate_limit or 80)
    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False,
                            lifespan="off", backlog=4096)  # fmt: skip
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
