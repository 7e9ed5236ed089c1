"""Loyalty: earning rules applied to a backlog of purchases by ``tessera worker --processes 2``.

PostgreSQL + Redis only (whatever ``--backends`` says). One installation and tenant per section
run. The program (:mod:`bench.loyaltydata`: three tiers, ten active rules on ``Order Completed``
dated before the data, the default refund events) is created first, then ``loyalty_events``
processed purchase events of ``loyalty_profiles`` profiles are written with ``COPY`` and the
tenant database is vacuumed and analysed (autovacuum may be off). In order:

1. One chunk's phases (no workers yet): partition 0's first chunks applied one after the other in
   one process, each phase of :func:`core.loyalty.engine.apply_rows` timed.
2. With ``tessera worker --processes 2 --threads T`` running and idle (every loyalty cursor at the
   stream's end meanwhile, so the one-minute tick applies nothing), ``loyalty_runs`` times: the
   loyalty tables emptied (``TRUNCATE``: they keep the column statistics of their analysis after
   step 1, see :func:`clear`), then in one transaction every loyalty cursor back to the start and
   :func:`core.loyalty.engine.queue_apply` (both partitions' jobs). Timed from before that
   transaction until no apply job is pending or running and ``loyalty_applied`` holds every event
   (the jobs polled every 0.5 s, the count once they are done). Aim: 5,000 events per second.
   ``--loyalty-threads 1 --loyalty-prefetch 1`` makes each worker process take one partition.

Checked after each run: every event applied exactly once, the ledger by kind, every refunded
order reversed, each member's balance equal to the sum of its ledger entries, no negative
balance, the members by tier, no error in the workers' log. CPU time of each worker process,
PostgreSQL, Redis and the rest of the machine during the run.

docs/benchmarks.md needs the section's markers (``<!-- loyalty:begin -->`` / ``<!-- loyalty:end -->``)
under a heading that says what is measured, as the other sections have.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench.config import Config
from bench.installation import POSTGRES_REDIS, TESSERA, Installation, Tenant, create_tenant, installation
from bench.loyaltydata import HISTORY_DAYS, TIERS, VIP_EVERY, Loaded, load_purchases, rules
from bench.orchestrationdata import psycopg_url
from bench.orchestrationsetup import cpu_text, wait_idle, worker_env
from bench.processes import READY_LINE, flags, info_env, run_module, spawn, stop, wait_log_lines
from bench.report import markdown_table, measured_line, number, progress

NAME = "loyalty"
WORKER_PROCESSES = 2
AIM_PER_S = 5_000.0
APPLY_JOB = "core.loyalty.apply"  # core.loyalty.engine.APPLY (this process does not import Tessera)
CHUNK = 5_000  # core.loyalty.engine.CHUNK
PHASE_CHUNKS = 4  # applied in one process for the phases; the first (every member new) reported apart
POLL_S = 0.5
PROGRESS_S = 30.0
START_S = 6.0  # the workers' sweeper queues the periodic jobs on its first pass, 5 s after it starts
JOB_TIMEOUT_S = 1800.0
CLEARED = ("loyalty_ledger", "loyalty_member", "loyalty_applied", "internal_event")
HEADERS = "measurement | size | median | aim | ratio to aim".split(" | ")


@dataclass
class Checks:
    """The outcome of one run, read from the tenant database and the workers' log."""

    applied: int
    missing: int  # purchase or refund events without a loyalty_applied row
    entries: dict[str, tuple[int, int]]  # kind: (entries, points)
    reversed_orders: int
    members: int
    balances: int
    mismatched: int  # members whose balance is not the sum of their ledger entries
    negative: int
    tiers: dict[str, int]
    internal_events: int
    log_errors: int

    def exact(self, loaded: Loaded) -> bool:
        """Every event applied once, every refund reversed, balances equal to their ledgers."""
        ledger = sum(points for _, points in self.entries.values())
        return (self.applied == loaded.events and self.missing == 0 and self.mismatched == 0
                and self.negative == 0 and self.balances == ledger and self.reversed_orders == loaded.refunds
                and self.log_errors == 0)  # fmt: skip


@dataclass
class RunSample:
    """One timed run: its wall time from queueing, the CPU it took, and its outcome."""

    seconds: float
    queue_s: float  # the transaction resetting the cursors and queueing the jobs
    cpu_s: dict[str, float]
    worker_cpu_s: list[float]  # per process of the worker's tree, most first
    checks: Checks
    parts_s: dict[str, float | None] = field(default_factory=dict)  # partition: its job done, after the start

    def per_second(self, events: int) -> float:
        """Events applied per second."""
        return events / self.seconds


@dataclass
class Prepared:
    """The installation (its environment), the tenant and the data set loaded into it."""

    inst: Installation
    tenant: Tenant
    loaded: Loaded
    now: datetime
    vacuum_s: float = 0.0
    phases: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The tenant database's psycopg connection string."""
        return psycopg_url(self.tenant.database_url)

    def job(self, job: str, env: dict[str, str] | None = None, **options: object) -> dict[str, Any]:
        """Run ``python -m bench.loyaltydata JOB --tenant SLUG ...``; its JSON result."""
        args = [job, *flags(tenant=self.tenant.slug, **options)]
        log = self.inst.data_dir / f"loyalty-{job}.log"
        return run_module("bench.loyaltydata", args, env or self.inst.env, log, JOB_TIMEOUT_S)


def vacuum(url: str, tables: tuple[str, ...] = ()) -> float:
    """``VACUUM (ANALYZE)`` these tables (default: the whole database); the seconds it took."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for table in tables or ("",):
            conn.execute(f'VACUUM (ANALYZE) "{table}"' if table else "VACUUM (ANALYZE)")
    return time.perf_counter() - started


def clear(url: str) -> None:
    """Empty what applying loyalty writes; every loyalty cursor at the stream's end (nothing to apply).

    The emptied tables keep the column statistics of their last analysis (``TRUNCATE`` leaves them;
    the planner sizes the tables as they grow): with those of an empty table (no statistics, as a
    ``VACUUM ANALYZE`` now would leave them), each lookup of a chunk reads every row written before.
    """
    with psycopg.connect(url) as conn:
        conn.execute(f"TRUNCATE {', '.join(CLEARED)}")
        conn.execute(
            "UPDATE stream_cursor SET last_id = (SELECT coalesce(max(id), 0) FROM event), mark_id = 0, "
            "mark_at = NULL WHERE name LIKE 'loyalty:%'"
        )
    vacuum(url, ("stream_cursor",))


def _count(conn: psycopg.Connection[Any], query: str, *params: object) -> int:
    row = conn.execute(query, params).fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


# What check() reads (plain SQL: this process does not import Tessera).
ENTRIES_SQL = (
    "SELECT kind, count(*), coalesce(sum(points), 0) FROM loyalty_ledger GROUP BY kind ORDER BY kind"
)
MEMBERS_SQL = (
    "SELECT count(*), coalesce(sum(balance), 0), count(*) FILTER (WHERE balance < 0) FROM loyalty_member"
)
TIERS_SQL = (
    "SELECT coalesce(t.name, 'none'), count(*) FROM loyalty_member m "
    "LEFT JOIN loyalty_tier t ON t.id = m.tier_id GROUP BY 1 ORDER BY 2 DESC"
)
MISSING_SQL = (
    "SELECT count(*) FROM event e WHERE e.event IN ('Order Completed', 'Order Refunded') "
    "AND NOT EXISTS (SELECT 1 FROM loyalty_applied a WHERE a.event_id = e.id)"
)
REVERSED_SQL = "SELECT count(DISTINCT order_id) FROM loyalty_ledger WHERE kind = 'reverse'"
MISMATCHED_SQL = (
    "SELECT count(*) FROM loyalty_member m LEFT JOIN (SELECT program_id, profile_id, sum(points) AS points "
    "FROM loyalty_ledger GROUP BY 1, 2) l USING (program_id, profile_id) "
    "WHERE m.balance <> coalesce(l.points, 0)"
)


def check(url: str, log: Path) -> Checks:
    """What the run left in the tenant database (and how many errors its workers logged)."""
    with psycopg.connect(url, autocommit=True) as conn:
        entries = {str(kind): (int(count), int(points)) for kind, count, points in conn.execute(ENTRIES_SQL)}
        members, balances, negative = conn.execute(MEMBERS_SQL).fetchone() or (0, 0, 0)
        tiers = {str(name): int(count) for name, count in conn.execute(TIERS_SQL)}
        return Checks(
            applied=_count(conn, "SELECT count(*) FROM loyalty_applied"),
            missing=_count(conn, MISSING_SQL),
            entries=entries,
            reversed_orders=_count(conn, REVERSED_SQL),
            members=int(members),
            balances=int(balances),
            mismatched=_count(conn, MISMATCHED_SQL),
            negative=int(negative),
            tiers=tiers,
            internal_events=_count(conn, "SELECT count(*) FROM internal_event"),
            log_errors=_log_errors(log),
        )


def _log_errors(log: Path) -> int:
    """Tracebacks and ERROR lines in the workers' log so far."""
    if not log.exists():
        return 0
    lines = log.read_text(errors="replace").splitlines()
    return sum(1 for line in lines if line.startswith("Traceback") or " ERROR " in line)


def _cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
        return float(times.user + times.system)
    except psutil.Error:
        return 0.0


class CpuMeter:
    """CPU seconds of each process of the workers' tree, PostgreSQL, Redis and the rest of the machine."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.start_processes, self.start = self.read()

    def read(self) -> tuple[dict[int, float], dict[str, float]]:
        """CPU seconds so far: per process of the workers' tree, and per part of the machine."""
        try:
            root = psutil.Process(self.workers)
            processes = {p.pid: _cpu(p) for p in [root, *root.children(recursive=True)]}
        except psutil.NoSuchProcess:
            processes = {}
        totals = {"workers": sum(processes.values())}
        for name, binary in (("postgres", "postgres"), ("redis", "redis-server")):
            totals[name] = sum(_cpu(p) for p in psutil.process_iter(["name"]) if p.info["name"] == binary)
        machine = psutil.cpu_times()
        totals["machine"] = machine.user + machine.nice + machine.system + machine.irq + machine.softirq
        return processes, totals

    def used(self) -> tuple[dict[str, float], list[float]]:
        """CPU seconds since the meter was made, per part (``others``: the rest of the machine), and per
        worker process (most first)."""
        processes, now = self.read()
        used = {name: max(0.0, now[name] - self.start.get(name, 0.0)) for name in now}
        machine = used.pop("machine")
        used["others"] = max(0.0, machine - sum(used.values()))
        before = self.start_processes
        per_process = sorted(
            (max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in processes.items()), reverse=True
        )
        return used, per_process


@contextmanager
def workers(inst: Installation) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``tessera worker --processes 2`` (no web server), ready; stopped afterwards. The process, its log."""
    log = inst.data_dir / "worker-loyalty.log"
    process = spawn([TESSERA, "worker", "--processes", str(WORKER_PROCESSES)], info_env(inst.env), log)
    try:
        wait_log_lines(log, READY_LINE, WORKER_PROCESSES, process, timeout=60)
        yield process, log
    finally:
        stop(process)


def wait_applied(url: str, events: int, timeout_s: float) -> float:
    """Wait until no apply job is pending or running and every event is applied; the wall-clock time
    (``time.time()``) it was seen."""
    busy_query = "SELECT count(*) FROM job WHERE kind = %s AND status IN ('pending', 'running')"
    started = reported = time.perf_counter()
    applied = 0
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            if not _count(conn, busy_query, APPLY_JOB):
                applied = _count(conn, "SELECT count(*) FROM loyalty_applied")
                if applied >= events:
                    return time.time()
            elapsed = time.perf_counter() - started
            if elapsed > timeout_s:
                applied = _count(conn, "SELECT count(*) FROM loyalty_applied")
                raise TimeoutError(
                    f"loyalty: {applied:,} of {events:,} events applied after {timeout_s:.0f} s"
                )
            if time.perf_counter() - reported > PROGRESS_S:
                reported = time.perf_counter()
                applied = _count(conn, "SELECT count(*) FROM loyalty_applied")
                progress(f"loyalty: {applied:,} of {events:,} events applied after {elapsed:.0f} s "
                         f"({applied / elapsed:,.0f}/s)")  # fmt: skip
            time.sleep(POLL_S)


def part_times(url: str, started_at: float) -> dict[str, float | None]:
    """Seconds from ``started_at`` to each partition's apply job (the first queued since) being done."""
    query = ("SELECT DISTINCT ON (payload->>'part') payload->>'part', extract(epoch FROM finished_at) "
             "FROM job WHERE kind = %s AND created_at >= to_timestamp(%s) ORDER BY payload->>'part', id")  # fmt: skip
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(query, (APPLY_JOB, started_at)).fetchall()
    return {str(part): None if done is None else float(done) - started_at for part, done in rows}


def measure_run(prepared: Prepared, workers_pid: int, log: Path, timeout_s: float) -> RunSample:
    """Queue both partitions' jobs on the cleared tables and wait until every event is applied."""
    meter = CpuMeter(workers_pid)
    queued = prepared.job("queue")
    done_at = wait_applied(prepared.url, prepared.loaded.events, timeout_s)
    cpu, per_process = meter.used()
    seconds = done_at - queued["started_at"]
    queue_s = queued["queued_at"] - queued["started_at"]
    parts = part_times(prepared.url, queued["started_at"])
    sample = RunSample(seconds, queue_s, cpu, per_process, check(prepared.url, log), parts)
    progress(f"loyalty: {prepared.loaded.events:,} events applied in {seconds:.1f} s "
             f"({sample.per_second(prepared.loaded.events):,.0f}/s); CPU {cpu_text(cpu)}")  # fmt: skip
    return sample


def prepare(inst: Installation, config: Config) -> Prepared:
    """Tenant, program and data set, vacuumed; one chunk's phases measured, then cleared."""
    now = datetime.now(UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    )  # the same days (caps) each run
    tenant = create_tenant(inst)
    prepared = Prepared(inst, tenant, Loaded(), now)
    prepared.job("setup", now=now.isoformat())
    progress(f"loyalty: loading {config.loyalty_events:,} events of {config.loyalty_profiles:,} profiles")
    prepared.loaded = load_purchases(tenant.database_url, config.loyalty_profiles, config.loyalty_events, now)
    prepared.vacuum_s = vacuum(prepared.url)
    progress(f"loyalty: loaded in {prepared.loaded.seconds:.0f} s ({prepared.loaded.orders:,} orders, "
             f"{prepared.loaded.refunds:,} refunds), vacuumed in {prepared.vacuum_s:.0f} s")  # fmt: skip
    prepared.phases = prepared.job("phases", env=inst.env_without_queue(), chunks=PHASE_CHUNKS)
    median = prepared.phases["median_ms"]
    progress(f"loyalty: one chunk in one process: {median.get('total', 0):.0f} ms (median)")
    vacuum(prepared.url, CLEARED)  # statistics of the tables holding rows, kept through the clearing
    clear(prepared.url)
    return prepared


def _phase_text(phases: dict[str, float]) -> str:
    shown = [(name, ms) for name, ms in phases.items() if name != "total" and ms >= 0.5]
    return ", ".join(f"{name} {ms:.0f} ms" for name, ms in sorted(shown, key=lambda item: -item[1]))


def _entries_text(entries: dict[str, tuple[int, int]]) -> str:
    return ", ".join(
        f"{kind} {number(count)} ({number(points)} points)" for kind, (count, points) in entries.items()
    )


def _notes(prepared: Prepared, samples: list[RunSample]) -> list[str]:
    loaded, checks = prepared.loaded, samples[-1].checks
    exact = all(s.checks.exact(loaded) for s in samples)
    ledger = sum(points for _, points in checks.entries.values())
    if exact:
        outcome = (f"every event applied exactly once ({number(checks.applied)} rows in `loyalty_applied`, no "
                   f"event without one), every refunded order reversed ({number(checks.reversed_orders)}), the "
                   f"sum of the balances equal to the sum of the ledger ({number(ledger)} points) and every "
                   f"member's balance to its own entries, no negative balance, no error in the workers' log, in "
                   f"every run")  # fmt: skip
    else:
        outcome = f"**not exact**: {[s.checks for s in samples]}"
    tiers = ", ".join(f"{name} {number(count)}" for name, count in checks.tiers.items())
    cpu = {name: statistics.median(s.cpu_s.get(name, 0.0) for s in samples) for name in samples[0].cpu_s}
    processes = ", ".join(f"{seconds:.0f} s" for seconds in samples[-1].worker_cpu_s if seconds >= 0.5)
    busy = [seconds for seconds in samples[-1].worker_cpu_s if seconds >= 0.1 * sum(samples[-1].worker_cpu_s)]
    if len(busy) == 1:
        processes += " (both partitions' jobs ran in one worker process, sharing its interpreter lock)"
    parts = "; ".join(f"partition {part} {number(done, 1)} s" for part, done in samples[-1].parts_s.items())
    if len(samples[-1].parts_s) < WORKER_PROCESSES:
        parts += " (a partition's job was coalesced into one already queued)"
    phases = prepared.phases
    first, median = phases.get("first_ms", {}), phases.get("median_ms", {})
    later = max(1, phases.get("chunks", 1) - 1)
    return [
        f"- Checks: {outcome}. Ledger (last run): {_entries_text(checks.entries)}; {number(checks.members)} "
        f"members ({tiers}); {number(checks.internal_events)} internal events.",
        f"- CPU during a run of {statistics.median(s.seconds for s in samples):.0f} s on {psutil.cpu_count()} cores "
        f"(median; PostgreSQL: every backend of the server; others: the rest of the machine): {cpu_text(cpu)}; by process of the workers' tree (last run): {processes}. Queueing (cursors "
        f"back to the start, both jobs queued, commit) took {samples[-1].queue_s * 1000:.0f} ms of it; each "
        f"partition's job done after (last run): {parts}.",
        f"- One chunk of {number(CHUNK)} events of partition 0 applied in one process, no workers running, "
        f"the tables analysed after the first chunk (median of {later} after the first): {median.get('total', 0):.0f} ms: {_phase_text(median)}. The first "
        f"chunk, where every member is new: {first.get('total', 0):.0f} ms: {_phase_text(first)}.",
        f"- Data set: {number(loaded.profiles)} profiles (one in {VIP_EVERY} with the `vip` trait), "
        f"{number(loaded.orders)} `Order Completed` and {number(loaded.refunds)} `Order Refunded` "
        f"({number(loaded.partial_refunds)} partial) over {HISTORY_DAYS} days, written with `COPY` in "
        f"{loaded.seconds:.0f} s, `VACUUM (ANALYZE)` {prepared.vacuum_s:.0f} s. Rules: "
        + "; ".join(rule["name"] for rule in rules(prepared.now)) + f"; tiers {', '.join(t[0] for t in TIERS)}.",
    ]  # fmt: skip


def render(prepared: Prepared, config: Config, samples: list[RunSample], load: float) -> list[str]:
    """The lines of the section (between its markers)."""
    events = prepared.loaded.events
    rate = statistics.median(s.per_second(events) for s in samples)
    seconds = statistics.median(s.seconds for s in samples)
    size = f"{number(events)} events, {len(rules(prepared.now))} rules"
    median = prepared.phases.get("median_ms", {}).get("total")
    chunk = f"{median:.0f} ms ({number(CHUNK / median * 1000)} events/s)" if median else "–"
    rows = [
        ["apply earning rules: queued to every event applied", size, f"{number(rate)} events/s",
         f"{number(AIM_PER_S)} events/s", f"{rate / AIM_PER_S:.2f}"],
        ["the same: wall time", size, f"{seconds:.1f} s", "–", "–"],
        ["one chunk of one partition, in one process", f"{number(CHUNK)} events", chunk, "–", "–"],
    ]  # fmt: skip
    prefetch = config.loyalty_prefetch or "dramatiq's default (2 × threads)"
    details = (f"PostgreSQL + Redis; `tessera worker --processes {WORKER_PROCESSES} --threads "
               f"{config.loyalty_threads}`, queue prefetch {prefetch}; {number(prepared.loaded.profiles)} profiles; "
               f"median of {len(samples)} run(s); load average {load:.1f} at the start")  # fmt: skip
    return [
        measured_line(details),
        "",
        *markdown_table(HEADERS, rows, left=2),
        "",
        *_notes(prepared, samples),
    ]


def run(config: Config) -> list[str]:
    """Prepare the installation and data set, then time the workers applying it; the section's lines."""
    load = psutil.getloadavg()[0]
    with installation(POSTGRES_REDIS) as base:
        prepared = prepare(base, config)
        inst = worker_env(base, config.loyalty_threads, config.loyalty_prefetch)
        samples: list[RunSample] = []
        with workers(inst) as (process, log):
            time.sleep(START_S)
            waited = wait_idle(prepared.tenant.database_url)
            progress(f"loyalty: workers ready; their first jobs done after {waited:.1f} s more")
            for number_ in range(config.loyalty_runs):
                if number_:
                    clear(prepared.url)
                    wait_idle(prepared.tenant.database_url)
                samples.append(measure_run(prepared, process.pid, log, config.loyalty_timeout_s))
    return render(prepared, config, samples, load)
