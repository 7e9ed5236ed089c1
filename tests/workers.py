"""Real ``tessera worker`` processes for tests that kill them: start, SIGKILL the whole tree, wait.

Used by the tests that prove durable work survives a dead worker (PostgreSQL + Redis).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import redis

from tests.plugins_host.packages import TESSERA

WAIT_SECONDS = 60


def redis_or_skip(url: str) -> redis.Redis:
    """A client of the Redis at ``url``; the test is skipped if it does not answer."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is unreachable at {url} ({exc}); start it with scripts/services")
    return client


def start_worker(env: dict[str, str], log: Path, cwd: Path, threads: int = 1) -> subprocess.Popen:
    """Start ``tessera worker`` (one process) in a session of its own, logging to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [TESSERA, "worker", "--processes", "1", "--threads", str(threads)],
            env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def kill(worker: subprocess.Popen) -> None:
    """SIGKILL the worker's whole process group (the CLI, its sweeper, dramatiq and its children)."""
    try:
        family = [psutil.Process(worker.pid), *psutil.Process(worker.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    try:
        os.killpg(worker.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for process in family:  # one that left the group is not spared
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    worker.wait(timeout=10)
    _, alive = psutil.wait_procs(family, timeout=10)
    assert not alive, f"worker processes survived SIGKILL: {alive}"


def wait_until(condition: Callable[[], bool], what: str, log: Path, seconds: float = WAIT_SECONDS) -> None:
    """Poll ``condition`` until true; fail with the worker log's tail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"
    pytest.fail(f"gave up after {seconds:.0f} s waiting for {what}; worker log:\n{tail}")


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen]]:
    """Worker subprocesses started by the test, always killed at the end."""
    started: list[subprocess.Popen] = []
    yield started
    for worker in started:
        if worker.poll() is None or psutil.pid_exists(worker.pid):
            kill(worker)
