"""Passes, second measurement: the time from a purchase event to the APNs push reaching the device.

PostgreSQL + Redis only, with ``tessera serve`` and ``tessera worker --processes 2``, as the
loyalty benchmark runs. A fake APNs (:func:`tessera_wallet_apple.fake_apns.running_fake_apns`:
HTTP/2, TLS, client certificates required) runs in a thread of this process and trusts this
process's test chain; the tenant's Apple Wallet is enabled *live* with that chain's .p12 and the
fake's URL and CA (:mod:`bench.passessetup`), with a loyalty program earning 1 point per unit of
``revenue`` of ``Order Completed`` and a card showing the balance. ``pass_latency_customers``
customers each get the card (``POST /api/v1/passes``) installed on a device of their own.

After a warm-up (one purchase per customer, up to :data:`WARMUP_PURCHASES`: the workers' first
APNs connections and first jobs are not timed), ``pass_latency_purchases`` purchases go through
``POST /v1/track`` one every ``pass_latency_interval_s`` seconds, round-robin over the customers.
Each purchase's latency runs from just before its request (``time.time()``) to the fake's receipt
of a push for that customer's device token (its ``received_at``, the same clock: one machine),
the first push after the request not already given to an earlier purchase. Through the
workers: processing folds the event into the profile, loyalty applies the rule (its own job), the
points change marks the pass, the refresh job re-renders it and pushes. Aim: 99th percentile
under 1 s.

Also reported: where the median time goes (from the tenant database: the event stored, the
points posted, the pass re-issued), the jobs that ran, the TLS connections the pushes came over,
the CPU used, and a device's view after the run: the changed serials since its last tag and the
new pass with the expected balance.
"""

from __future__ import annotations

import io
import json
import random
import statistics
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import httpx
import psutil
import psycopg

from bench.config import Config
from bench.installation import POSTGRES_REDIS, Tenant, create_tenant, installation
from bench.loyalty import CpuMeter
from bench.orchestrationdata import psycopg_url
from bench.orchestrationjourneys import percentile
from bench.orchestrationsetup import cpu_text, wait_idle
from bench.passes import Measured
from bench.passessetup import PURCHASE, Card, install_cards
from bench.processes import Running, flags, run_module, running
from bench.report import number, progress

if TYPE_CHECKING:
    from tessera_wallet_apple.fake_apns import FakeApns

WORKER_PROCESSES = 2
AIM_P99_MS = 1_000.0
WARMUP_PURCHASES = 10
START_S = 6.0  # the workers' sweeper queues the periodic jobs on its first pass, 5 s after it starts
DELIVERY_WAIT_S = 30.0  # how long the last purchases' pushes may take to arrive
POLL_S = 0.1
SETUP_TIMEOUT_S = 300.0
JOB_KINDS = ("core.process_events", "core.loyalty.apply", "core.passes.refresh")


@dataclass
class Purchase:
    """One purchase sent: whose, which order, and when (epoch seconds, this machine's clock)."""

    card: Card
    order_id: str
    message_id: str
    revenue: int
    sent_at: float
    pushed_at: float | None = None

    @property
    def latency_ms(self) -> float | None:
        """From the request to the push at the fake."""
        return None if self.pushed_at is None else (self.pushed_at - self.sent_at) * 1000


@dataclass
class LatencySample:
    """The timed purchases and what the tenant database and the device showed."""

    purchases: list[Purchase]
    customers: int
    interval_s: float
    stages_ms: dict[str, list[float]] = field(default_factory=dict)  # stage: per purchase
    jobs: dict[str, tuple[int, float | None]] = field(default_factory=dict)  # kind: (jobs, median ms)
    cpu_s: dict[str, float] = field(default_factory=dict)
    other_pushes: int = 0  # pushes not matched to a purchase (more than one per change)
    connections: int = 0  # the TLS connections the pushes came over (one per worker process when kept)
    device_check: str = ""
    load: float = 0.0  # the load average when the measurement started

    @property
    def latencies_ms(self) -> list[float]:
        """The latencies of the purchases whose push arrived."""
        return [p.latency_ms for p in self.purchases if p.latency_ms is not None]

    @property
    def missing(self) -> int:
        """Purchases whose push never arrived."""
        return sum(1 for p in self.purchases if p.pushed_at is None)


def _send(server: Running, tenant: Tenant, cards: list[Card], count: int, interval_s: float,
          rng: random.Random) -> list[Purchase]:  # fmt: skip
    """``count`` purchases, round-robin over ``cards``, one every ``interval_s`` seconds."""
    sent = []
    start = time.perf_counter()
    with httpx.Client(base_url=server.url, auth=(tenant.write_key, ""), timeout=30) as client:
        for index in range(count):
            pause = start + index * interval_s - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            card = cards[index % len(cards)]
            purchase = Purchase(card, uuid.uuid4().hex, uuid.uuid4().hex, rng.randint(5, 200), 0.0)
            body = {"userId": card.user_id, "event": PURCHASE, "messageId": purchase.message_id,
                    "properties": {"order_id": purchase.order_id, "revenue": purchase.revenue,
                                   "currency": "EUR"}}  # fmt: skip
            purchase.sent_at = time.time()
            client.post("/v1/track", json=body).raise_for_status()
            sent.append(purchase)
    return sent


def _push_times(fake: FakeApns) -> dict[str, list[float]]:
    """token -> when the fake accepted each push for it (epoch seconds), oldest first."""
    times: dict[str, list[float]] = {}
    for push in fake.devices.pushes():
        if push.status == 200:
            times.setdefault(push.token, []).append(datetime.fromisoformat(push.received_at).timestamp())
    return times


def match(purchases: list[Purchase], pushes: dict[str, list[float]]) -> int:
    """Give each purchase the first push for its device after its request and not given before;
    how many pushes were left over."""
    left = {token: sorted(times) for token, times in pushes.items()}
    for purchase in sorted(purchases, key=lambda p: p.sent_at):
        times = left.get(purchase.card.push_token, [])
        while times and times[0] < purchase.sent_at:
            times.pop(0)  # before this request: another purchase's, or a duplicate
        purchase.pushed_at = times.pop(0) if times else None
    return sum(len(times) for times in left.values())


def wait_pushes(fake: FakeApns, purchases: list[Purchase]) -> int:
    """Match pushes to purchases until each has one (at most :data:`DELIVERY_WAIT_S`); pushes left over."""
    deadline = time.time() + DELIVERY_WAIT_S
    while True:
        extra = match(purchases, _push_times(fake))
        if all(p.pushed_at is not None for p in purchases) or time.time() > deadline:
            return extra
        time.sleep(POLL_S)


# --- where the time goes (from the tenant database) -----------------------------------------------
STAGES_SQL = """
SELECT e.message_id, extract(epoch FROM e.received_at), extract(epoch FROM l.recorded_at),
       (SELECT extract(epoch FROM min(a.at)) FROM pass_activity a
         WHERE a.serial = %(serial)s AND a.kind = 'updated' AND a.at >= l.recorded_at)
FROM event e LEFT JOIN loyalty_ledger l ON l.event_id = e.id AND l.kind = 'earn'
WHERE e.message_id = %(message_id)s
"""
JOBS_SQL = (
    "SELECT kind, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - "
    "created_at)) FROM job WHERE kind = ANY(%s) AND created_at >= to_timestamp(%s) AT TIME ZONE 'UTC' GROUP BY kind"
)


def stages(database_url: str, purchases: list[Purchase]) -> dict[str, list[float]]:
    """Per step, the milliseconds each purchase took: request to event stored (``event.received_at``),
    to points posted (``loyalty_ledger.recorded_at``), to pass re-issued (its ``updated`` activity),
    to the fake's receipt of the push."""
    names = ("request to event stored", "stored to points posted (processing, loyalty job)",
             "posted to pass re-issued (refresh job)", "re-issued to the fake's receipt (APNs push)")  # fmt: skip
    found: dict[str, list[float]] = {name: [] for name in names}
    with psycopg.connect(psycopg_url(database_url), autocommit=True) as conn:
        for purchase in purchases:
            row = conn.execute(
                STAGES_SQL, {"serial": purchase.card.serial, "message_id": purchase.message_id}
            ).fetchone()
            if row is None or purchase.pushed_at is None or None in row[1:4]:
                continue
            moments = [purchase.sent_at, *(float(value) for value in row[1:4]), purchase.pushed_at]
            for name, (before, after) in zip(names, zip(moments, moments[1:], strict=False), strict=True):
                found[name].append((after - before) * 1000)
    return found


def job_times(database_url: str, since: float) -> dict[str, tuple[int, float | None]]:
    """Per job kind of the path, the jobs created since ``since`` and their median created-to-finished ms."""
    with psycopg.connect(psycopg_url(database_url), autocommit=True) as conn:
        rows = conn.execute(JOBS_SQL, (list(JOB_KINDS), since)).fetchall()
    return {str(kind): (int(count), None if ms is None else float(ms) * 1000) for kind, count, ms in rows}


# --- the device's view ----------------------------------------------------------------------------------
def device_check(server: Running, tenant: Tenant, pass_type: str, card: Card, tag: str, expected: int) -> str:
    """As the device after a push: the serials changed since its tag, then the pass; what it saw."""
    base = f"/x/{tenant.slug}/wallet_apple/v1"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        listing = client.get(f"{base}/devices/{card.device_id}/registrations/{pass_type}",
                             params={"passesUpdatedSince": tag})  # fmt: skip
        serials = listing.json().get("serialNumbers", []) if listing.status_code == 200 else []
        fetched = client.get(f"{base}/passes/{pass_type}/{card.serial}",
                             headers={"Authorization": f"ApplePass {card.authentication_token}"})  # fmt: skip
        if fetched.status_code != 200:
            return f"**the pass could not be fetched** ({fetched.status_code})"
        with zipfile.ZipFile(io.BytesIO(fetched.content)) as pkpass:
            shown = json.loads(pkpass.read("pass.json"))
    points = next(f["value"] for f in shown["storeCard"]["primaryFields"] if f["key"] == "points")
    listed = "listed" if serials == [card.serial] else f"**not listed** ({listing.status_code}, {serials})"
    verdict = "as expected" if points == expected else f"**expected {expected}**"
    return (f"its serial {listed} among the passes updated since the tag it held before the run; the pass "
            f"fetched ({len(fetched.content) / 1024:,.0f} KB, Last-Modified {fetched.headers.get('last-modified')}) "
            f"shows {points} points, {verdict}")  # fmt: skip


def _tag(server: Running, tenant: Tenant, pass_type: str, card: Card) -> str:
    """The device's ``lastUpdated`` tag now."""
    url = f"{server.url}/x/{tenant.slug}/wallet_apple/v1/devices/{card.device_id}/registrations/{pass_type}"
    answer = httpx.get(url, timeout=30)
    answer.raise_for_status()
    return str(answer.json()["lastUpdated"])


# --- the run ----------------------------------------------------------------------------------------------
def measure(config: Config) -> LatencySample:
    """Set up the installation, the fake APNs and the customers; time the purchases."""
    from tessera_wallet_apple.fake_apns import running_fake_apns  # the harness imports Tessera only here
    from tessera_wallet_apple.testchain import chain

    load = psutil.getloadavg()[0]
    progress("passes: generating the test certificate chain for the latency")
    test_chain = chain()  # this process's: the fake trusts it, and the tenant's config is its .p12
    rng = random.Random(11)
    customers, count = config.pass_latency_customers, config.pass_latency_purchases
    with running_fake_apns(test_chain.ca_bundle_pem.encode()) as fake, installation(POSTGRES_REDIS) as inst:
        tenant = create_tenant(inst)
        wallet = {**test_chain.p12_config(), "apns_url": fake.url, "apns_ca_pem": fake.ca_pem.decode()}
        path = inst.data_dir / "wallet-config.json"
        path.touch(mode=0o600)
        path.write_text(json.dumps(wallet))
        setup = run_module("bench.passessetup", flags(tenant=tenant.slug, wallet=path), inst.env,
                           inst.data_dir / "passes-setup.log", SETUP_TIMEOUT_S)  # fmt: skip
        with running(inst, worker_processes=WORKER_PROCESSES) as server:
            time.sleep(START_S)
            wait_idle(tenant.database_url)
            pass_type = test_chain.pass_type_identifier
            cards = install_cards(server.url, tenant, int(setup["template_id"]), pass_type, customers)
            progress(f"passes: {len(cards)} customers with a card on a device; warming up")
            warmup = _send(
                server, tenant, cards, min(WARMUP_PURCHASES, len(cards)), config.pass_latency_interval_s, rng
            )
            wait_pushes(fake, warmup)
            wait_idle(tenant.database_url, settle_s=0.5)
            spot = cards[(count - 1) % len(cards)]  # the customer of the last purchase
            tag = _tag(server, tenant, pass_type, spot)
            fake.devices.reset()
            assert server.workers is not None
            meter, since = CpuMeter(server.workers.pid), time.time()
            progress(f"passes: {count} purchases, one every {config.pass_latency_interval_s:g} s")
            purchases = _send(server, tenant, cards, count, config.pass_latency_interval_s, rng)
            extra = wait_pushes(fake, purchases)
            cpu, _ = meter.used()
            sample = LatencySample(
                purchases, len(cards), config.pass_latency_interval_s, cpu_s=cpu, load=load
            )
            sample.other_pushes = extra
            sample.connections = len({push.peer for push in fake.devices.pushes()})
            wait_idle(tenant.database_url, settle_s=0.5)
            sample.stages_ms = stages(tenant.database_url, purchases)
            sample.jobs = job_times(tenant.database_url, since)
            expected = sum(p.revenue for p in warmup + purchases if p.card == spot)
            sample.device_check = device_check(server, tenant, pass_type, spot, tag, expected)
    if sample.latencies_ms:
        lat = sample.latencies_ms
        progress(f"passes: purchase to push: {len(lat)} of {count} arrived; p50 {statistics.median(lat):.0f} ms, "
                 f"p99 {percentile(lat, 0.99):.0f} ms, max {max(lat):.0f} ms")  # fmt: skip
    return sample


def measure_latency(config: Config) -> Measured:
    """Purchase event to APNs push: the section's rows, notes and details."""
    return result(measure(config))


def result(sample: LatencySample) -> Measured:
    """The table rows, the notes and the details of the measured line."""
    lat = sample.latencies_ms
    size = f"{number(len(sample.purchases))} purchases, {number(sample.customers)} passes"
    p50 = statistics.median(lat) if lat else None
    p90, p99 = ((percentile(lat, share) if lat else None) for share in (0.9, 0.99))
    rows = [
        ["purchase event to APNs push at the fake, median", size, f"{number(p50)} ms", "–", "–"],
        ["the same, 99th percentile", size, f"{number(p99)} ms", f"{number(AIM_P99_MS)} ms",
         f"{p99 / AIM_P99_MS:.2f}" if p99 is not None else "–"],
    ]  # fmt: skip
    split = "; ".join(
        f"{name} {number(statistics.median(values))} ms (p99 {number(percentile(values, 0.99))} ms)"
        for name, values in sample.stages_ms.items() if values
    )  # fmt: skip
    jobs = "; ".join(f"`{kind}` {number(n)} jobs, created to finished {number(ms)} ms (median)"
                     for kind, (n, ms) in sorted(sample.jobs.items()))  # fmt: skip
    notes = [
        f"- Latency: {number(len(sample.purchases))} `Order Completed` events through `POST /v1/track`, one every "
        f"{sample.interval_s * 1000:.0f} ms, round-robin over {number(sample.customers)} customers (each with its "
        f"card installed on one device, so one push per purchase), timed from before the request to the fake "
        f"APNs's receipt of the push (HTTP/2 + TLS with the Pass Type ID client certificate, in a thread of the "
        f"benchmark process; same clock). p50 {number(p50)} ms, p90 {number(p90)} ms, p99 {number(p99)} ms, "
        f"max {number(max(lat) if lat else None)} ms; {number(sample.missing)} pushes missing after "
        f"{DELIVERY_WAIT_S:.0f} s, {number(sample.other_pushes)} extra; the pushes came over {sample.connections} TLS connection(s). {min(WARMUP_PURCHASES, sample.customers)} "
        "warm-up purchases before (not timed).",
        f"- Where the time goes (median per step, dated by the tenant database): {split}. Jobs of the run: {jobs}. "
        f"CPU during the run: {cpu_text(sample.cpu_s)}.",
        f"- The device of the last purchase, after the run: {sample.device_check}.",
    ]
    details = (
        f"latency: PostgreSQL + Redis, `tessera worker --processes {WORKER_PROCESSES}`, one purchase every "
        f"{sample.interval_s * 1000:.0f} ms, load average {sample.load:.1f} at its start"
    )
    return Measured(rows, notes, details)
