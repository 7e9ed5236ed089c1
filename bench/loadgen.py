"""A cheap HTTP load generator for the ingestion API, run as a process of its own.

``python -m bench.loadgen --port P --write-key K --mode batch|track [--connections N] ...`` keeps
``N`` keep-alive HTTP/1.1 connections busy (asyncio, raw sockets: request bytes are built before the
run, only a 12-digit request number is spliced into each so every ``messageId`` is unique, and
only the status line, ``Content-Length`` and, for batches, the ``accepted`` count of an answer are
read). After ``--warmup`` seconds it counts the answers completed during ``--duration`` seconds and
prints one JSON object: requests, 200 answers, accepted events, other statuses, connection
errors, rates, latency percentiles of the 200 answers, and the CPU time the generator itself used.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import random
import re
import resource
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.events import mixed_event

MARK = b"#" * 12  # where each request's number goes (12 digits, so the Content-Length stays right)
ACCEPTED = re.compile(rb'"accepted":\s*(\d+)')


def build_templates(
    mode: str, port: int, write_key: str, batch_size: int, count: int, tag: str
) -> list[list[bytes]]:
    """``count`` complete requests, each split at :data:`MARK` (join the parts with the request number)."""
    rng = random.Random(tag)
    auth = base64.b64encode(f"{write_key}:".encode()).decode()
    path = "/v1/batch" if mode == "batch" else "/v1/track"
    templates = []
    for template in range(count):
        if mode == "batch":
            events = [mixed_event(rng, tag, f"{tag}-{MARK.decode()}-{i:03d}") for i in range(batch_size)]
            payload: dict[str, Any] = {"batch": events, "sentAt": events[-1]["timestamp"]}
        else:
            payload = mixed_event(rng, tag, f"{tag}-{MARK.decode()}-{template:03d}", track_only=True)
        body = json.dumps(payload, separators=(",", ":")).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {auth}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        templates.append((head + body).split(MARK))
    return templates


@dataclass
class Tally:
    """What the connections saw inside the measuring window."""

    requests: int = 0
    ok: int = 0
    accepted: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    connection_errors: int = 0
    latencies: list[float] = field(default_factory=list)
    cpu_s: float = 0.0  # CPU time this process used inside the window


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, whether the server closes the connection) of one HTTP/1.1 answer."""
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    at = head.find(b"content-length:")
    length = int(head[at + 15 : head.find(b"\r\n", at)]) if at >= 0 else 0
    body = await reader.readexactly(length) if length else b""
    return int(head[9:12]), body, b"connection: close" in head


@dataclass
class Load:
    """The requests to send, the measuring window, and what was seen in it."""

    port: int
    templates: list[list[bytes]]
    window: tuple[float, float]  # perf_counter start and end
    batch: bool
    tally: Tally = field(default_factory=Tally)
    numbers: itertools.count[int] = field(default_factory=itertools.count)

    def next_request(self) -> bytes:
        """The next request: a template with a fresh request number (so fresh message ids)."""
        number = next(self.numbers)
        return (b"%012d" % number).join(self.templates[number % len(self.templates)])

    def record(self, status: int, body: bytes, latency: float) -> None:
        """Count one answer completed inside the window."""
        tally = self.tally
        tally.requests += 1
        if status != 200:
            tally.statuses[status] += 1
            return
        tally.ok += 1
        tally.latencies.append(latency)
        if not self.batch:
            tally.accepted += 1
        elif found := ACCEPTED.search(body):
            tally.accepted += int(found.group(1))

    async def connection(self) -> None:
        """One keep-alive connection sending requests back to back until the window ends."""
        start, end = self.window
        reader = writer = None
        while time.perf_counter() < end:
            try:
                if reader is None or writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                sent = time.perf_counter()
                writer.write(self.next_request())
                status, body, closing = await read_answer(reader)
                done = time.perf_counter()
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                if start <= time.perf_counter() <= end:
                    self.tally.connection_errors += 1
                closing, done = True, 0.0
                await asyncio.sleep(0.05)
            else:
                if start <= done <= end:
                    self.record(status, body, done - sent)
            if closing and writer is not None:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()


async def run(
    port: int, templates: list[list[bytes]], connections: int, warmup: float, duration: float, batch: bool
) -> Tally:
    """Drive ``connections`` connections for ``warmup + duration`` seconds; the tally of the window."""
    now = time.perf_counter()
    load = Load(port, templates, (now + warmup, now + warmup + duration), batch)
    tasks = [asyncio.create_task(load.connection()) for _ in range(connections)]
    await asyncio.sleep(max(0.0, load.window[0] - time.perf_counter()))
    cpu_at_start = _cpu_seconds()
    await asyncio.sleep(max(0.0, load.window[1] - time.perf_counter()))
    load.tally.cpu_s = _cpu_seconds() - cpu_at_start
    _, pending = await asyncio.wait(tasks, timeout=30)
    for task in pending:  # an answer still missing 30 s after the end counts for nothing
        task.cancel()
    return load.tally


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile_ms(values: list[float], fraction: float) -> float | None:
    """A percentile of latencies in seconds, as milliseconds (None without samples)."""
    if len(values) < 2:
        return values[0] * 1000 if values else None
    return statistics.quantiles(values, n=1000, method="inclusive")[round(fraction * 1000) - 1] * 1000


def summary(tally: Tally, duration: float) -> dict[str, Any]:
    """The JSON-ready result of a run."""
    return {
        "duration_s": duration,
        "requests": tally.requests,
        "ok": tally.ok,
        "accepted_events": tally.accepted,
        "other_statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "connection_errors": tally.connection_errors,
        "requests_per_s": tally.ok / duration,
        "events_per_s": tally.accepted / duration,
        "p50_ms": percentile_ms(tally.latencies, 0.50),
        "p99_ms": percentile_ms(tally.latencies, 0.99),
        "generator_cpu_share": tally.cpu_s / duration,
    }


def main() -> None:
    """Parse the options, run, print the JSON result."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--write-key", required=True)
    parser.add_argument("--mode", choices=("batch", "track"), required=True)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--templates", type=int, default=64, help="distinct request bodies to cycle through")
    parser.add_argument("--tag", default=f"{random.getrandbits(32):08x}", help="makes this run's ids unique")
    args = parser.parse_args()
    templates = build_templates(
        args.mode, args.port, args.write_key, args.batch_size, args.templates, args.tag
    )
    tally = asyncio.run(
        run(args.port, templates, args.connections, args.warmup, args.duration, args.mode == "batch")
    )
    print(json.dumps(summary(tally, args.duration)))


if __name__ == "__main__":
    main()
