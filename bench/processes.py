"""Starting, watching and stopping an installation's processes: ``tessera serve`` and ``tessera worker``.

Every process logs to a file in the installation's data folder (never to an unread pipe) and
runs in a session of its own: Ctrl-C reaches only the benchmark, which then stops its processes
in order (SIGTERM, and a kill of whatever is left of their trees).
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.installation import PYTHON, ROOT, TESSERA, Installation

READY_LINE = "Worker process is ready for action."  # dramatiq logs it once per worker process


def info_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` for ``tessera worker``: at INFO, the level :data:`READY_LINE` is logged at."""
    return {**env, "TESSERA_LOG_LEVEL": "INFO"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MiB."""
    process = psutil.Process(pid)
    processes = [process, *process.children(recursive=True)]
    total = 0
    for member in processes:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


@functools.cache
def serve_supports_workers() -> bool:
    """True when this ``tessera serve`` accepts ``--workers N`` (several web processes)."""
    done = subprocess.run(
        [TESSERA, "serve", "--help"], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}
    )
    return "--workers" in done.stdout


def spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` in a new session with stdout and stderr appended to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM the process (it stops its own children), then kill whatever of its tree lingers."""
    try:
        tree = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    _, alive = psutil.wait_procs(tree, timeout=5)
    for child in alive:  # only descendants this process had, each by its own id
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


def wait_healthy(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> float:
    """Poll ``/healthz`` until it answers 200; the seconds waited. Fails if the server exits."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"tessera serve exited with code {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"the server did not become healthy within {timeout:.0f} s")


def wait_log_lines(
    log: Path, line: str, count: int, process: subprocess.Popen[bytes], timeout: float
) -> None:
    """Wait until ``line`` appears ``count`` times in ``log``; fails if the process exits first."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the process exited with code {process.returncode}; see {log}")
        if log.exists() and log.read_text(errors="replace").count(line) >= count:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{count} x {line!r} did not appear in {log} within {timeout:.0f} s")


@dataclass(frozen=True)
class Running:
    """A running server (and, on Redis, its workers): where to reach it and how many web processes."""

    port: int
    server: subprocess.Popen[bytes]
    workers: subprocess.Popen[bytes] | None
    web_processes: int

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def running(inst: Installation, web_processes: int = 1, worker_processes: int = 2) -> Iterator[Running]:
    """``tessera serve`` (plus ``tessera worker --processes N`` on Redis), ready to work; stopped after.

    Ready means ``/healthz`` answers 200 and, on Redis, every dramatiq worker process logged that
    it is ready. ``web_processes`` above 1 needs ``serve --workers`` (see :func:`serve_supports_workers`).
    """
    port = free_port()
    command = [TESSERA, "serve", "--port", str(port)]
    if web_processes > 1:
        command += ["--workers", str(web_processes)]
    with ExitStack() as stack:
        workers = None
        if inst.uses_redis:
            worker_log = inst.data_dir / f"worker-{port}.log"
            workers = spawn(
                [TESSERA, "worker", "--processes", str(worker_processes)], info_env(inst.env), worker_log
            )
            stack.callback(stop, workers)
        server = spawn(command, inst.env, inst.data_dir / f"serve-{port}.log")
        stack.callback(stop, server)
        wait_healthy(port, server)
        if workers is not None:
            wait_log_lines(worker_log, READY_LINE, worker_processes, workers, timeout=60)
        yield Running(port, server, workers, web_processes)


def run_module(
    module: str,
    args: list[str],
    env: dict[str, str],
    log: Path,
    timeout: float,
    tick_s: float | None = None,
    on_tick: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Run ``python -m module args`` (stderr to ``log``) and parse the JSON it prints last.

    Every ``tick_s`` seconds ``on_tick(elapsed)`` is called (progress reports); after ``timeout``
    seconds the process is killed and :class:`TimeoutError` raised.
    """
    with open(log, "ab") as errors:
        process = subprocess.Popen(
            [PYTHON, "-m", module, *args], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=errors
        )
    started = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - started
        wait = max(0.1, min(tick_s or timeout, timeout - elapsed))
        try:
            out, _ = process.communicate(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            elapsed = time.perf_counter() - started
            if elapsed >= timeout:
                process.kill()
                process.communicate()
                raise TimeoutError(f"python -m {module} did not finish within {timeout:.0f} s") from None
            if on_tick is not None:
                on_tick(elapsed)
    if process.returncode != 0:  # the log goes away with the installation: quote its end
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise RuntimeError(f"python -m {module} failed with code {process.returncode}; {log} ends:\n{tail}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


def flags(**options: object) -> list[str]:
    """Command line flags from keyword arguments: ``flags(batch_size=100)`` is ``["--batch-size", "100"]``."""
    return [item for key, value in options.items() for item in (f"--{key.replace('_', '-')}", str(value))]
