"""Wallet operation: a pass operation to ``operation_profiles`` profiles issued end to end (issue 8).

PostgreSQL, one fresh installation per run (:func:`bench.installation.installation`). A fake
Google (:func:`tessera_wallet_google.sandbox.create_sandbox_app`, served by uvicorn from a thread
of this process, behind a small counter of its requests) trusts this process's test service
account; the tenant's Google Wallet is enabled *live* (not sandbox) with that account, a made-up
issuer id and the fake's URL as ``api_url`` (the private-gateway setting), so the channel calls
it exactly as it would call Google. Apple Wallet is enabled live with the plugin's test chain;
no device holds a pass yet, so nothing goes to APNs (issuing an Apple pass stores it; the signed
.pkpass is built when a phone fetches it, measured by the ``passes`` section).

Everything inside Tessera runs in ``python -m bench.wallet_operationdata`` (see there): the
tenant's members loaded with ``COPY`` (first name, email, consent, a loyalty balance), the
operation built through :mod:`core.operations.service` (steps 1 to 6, no message channel), then
timed: ``launch`` and the ``core.operations.launch`` job it queues, claimed and run in that
process by ``core.queue.actors.execute_job`` (one thread: the job is one job; a ``tessera
worker`` would run the same code, plus its queue's pick-up delay), until the operation reads
``launched``. The job issues the Apple passes chunk by chunk (render, check, store, notify),
then the Google passes, whose ``notify`` publishes each new pass to the fake (one object insert
per pass, the class once).

Reported: the total time, passes issued per wallet and failures, passes per second, the objects
the fake holds at the end (must equal the Google passes issued), and the split of the job's time
(reading the audience; per wallet: ``issue()``, the commits storing the rows, ``notify``; for
Google ``publish_passes`` inside it: the objects built and sent to the fake), with the fake's request count and its first-to-last
object insert. Medians over ``operation_runs`` runs (one at full size).

docs/benchmarks.md needs the section's markers (``<!-- wallet_operation:begin -->`` /
``<!-- wallet_operation:end -->``).
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psutil

from bench.config import Config
from bench.installation import POSTGRES_REDIS, create_tenant, installation
from bench.processes import flags, run_module
from bench.report import markdown_table, measured_line, number, progress

NAME = "wallet_operation"
ISSUER_ID = "3388000000077777777"
APPLE, GOOGLE = "wallet_apple", "wallet_google"
LABELS = {APPLE: "Apple", GOOGLE: "Google"}
HEADERS = "measurement | size | median | aim | ratio to aim".split(" | ")
RUN_TIMEOUT_S = 4 * 3600.0
TICK_S = 60.0


class CountingApp:
    """An ASGI wrapper counting the fake's HTTP requests by kind, with the first and last of each."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def reset(self) -> None:
        """Forget the requests counted."""
        with self.lock:
            self.counts.clear()
            self.first.clear()
            self.last.clear()

    @staticmethod
    def kind(method: str, path: str) -> str:
        """``POST loyaltyObject``, ``PUT loyaltyClass``, ``POST token``..."""
        parts = path.strip("/").split("/")
        if parts[:2] == ["walletobjects", "v1"] and len(parts) > 2:
            return f"{method} {parts[2]}" + (f" {parts[4]}" if len(parts) > 4 else "")
        return f"{method} {parts[0]}"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            kind, now = self.kind(scope["method"], scope["path"]), time.time()
            with self.lock:
                self.counts[kind] += 1
                self.first.setdefault(kind, now)
                self.last[kind] = now
        await self.app(scope, receive, send)


@dataclass
class Run:
    """One run: what the subprocess printed and what the fake saw."""

    result: dict[str, Any]
    fake_objects: int
    fake_classes: int
    requests: dict[str, int] = field(default_factory=dict)
    insert_span_s: float | None = None  # first to last object insert at the fake
    spot: str = ""  # the last Google pass's object at the fake, checked against the database

    @property
    def seconds(self) -> float:
        """Launch to the state ``launched``."""
        return float(self.result["seconds"])

    def wallet(self, channel: str) -> dict[str, int]:
        """The job's tally of one wallet: issued, new, failed."""
        return dict(self.result["counts"].get(channel, {}))

    @property
    def issued(self) -> int:
        """Passes issued, both wallets."""
        return sum(self.wallet(channel).get("issued", 0) for channel in (APPLE, GOOGLE))

    def phase(self, name: str) -> float:
        """Seconds spent in one timed phase (0 when it did not run)."""
        return float(self.result["phases_s"].get(name, 0.0))


def one_run(config: Config, counting: CountingApp, url: str, account: dict[str, str]) -> Run:
    """A fresh installation and tenant, the operation launched against the fake; what happened."""
    state = counting.app.state.google
    state.reset()
    counting.reset()
    with installation(POSTGRES_REDIS) as inst:
        tenant = create_tenant(inst)
        google = {"issuer_id": ISSUER_ID, "service_account_json": json.dumps(account), "api_url": url,
                  "origins": ["https://shop.example"]}  # fmt: skip
        path = inst.data_dir / "google-wallet.json"
        path.touch(mode=0o600)
        path.write_text(json.dumps(google))
        started = time.perf_counter()

        def tick(elapsed: float) -> None:
            progress(f"wallet_operation: {elapsed:.0f} s; the fake holds {len(state.objects):,} objects")

        options = flags(tenant=tenant.slug, database_url=tenant.database_url, wallet=path,
                        profiles=config.operation_profiles)  # fmt: skip
        result = run_module("bench.wallet_operationdata", options, inst.env_without_queue(),
                            inst.data_dir / "wallet-operation.log", RUN_TIMEOUT_S, TICK_S, tick)  # fmt: skip
        progress(
            f"wallet_operation: run done in {time.perf_counter() - started:.0f} s (setup and load included)"
        )
    with counting.lock:
        requests = dict(counting.counts)
        first, last = counting.first.get("POST loyaltyObject"), counting.last.get("POST loyaltyObject")
    with state.lock:
        objects, classes = len(state.objects), len(state.classes)
        spot = spot_check(state, result.get("spot"))
    span = None if first is None or last is None else last - first
    return Run(result, objects, classes, requests, span, spot)


def spot_check(state: Any, spot: dict[str, Any] | None) -> str:
    """Whether the fake's object of the last Google pass shows the member's balance and first name."""
    if spot is None:
        return "**no Google pass to check**"
    stored = state.objects.get(spot["serial"])
    if stored is None:
        return f"**the fake has no object {spot['serial']}**"
    body = stored.resource
    shown = body.get("loyaltyPoints", {}).get("balance", {})
    points = shown.get("int", shown.get("string"))
    name = spot["first_name"]
    named = f'"{name}"' in json.dumps(body)  # the member field: a text module or the account name
    ok = str(points) == str(spot["balance"]) and named
    verdict = "as in the database" if ok else f"**expected {spot['balance']} points and {name}**"
    return f"its object at the fake shows {points} points{' and ' + name if named else ''}, {verdict}"


def measure(config: Config) -> list[Run]:
    """Serve the fake Google, then ``operation_runs`` runs."""
    from tessera_wallet_google import testkeys  # the harness imports Tessera's plugins only here
    from tessera_wallet_google.sandbox import create_sandbox_app

    from tests.fakes.provider import serving_app

    account = testkeys.test_service_account()  # this process's: the fake trusts it
    counting = CountingApp(create_sandbox_app())
    runs = []
    with serving_app(counting) as url:
        for number_ in range(max(1, config.operation_runs)):
            progress(f"wallet_operation: run {number_ + 1}, {config.operation_profiles:,} profiles")
            run = one_run(config, counting, url, account)
            progress(f"wallet_operation: {run.seconds:.1f} s, {run.issued:,} passes, "
                     f"{run.fake_objects:,} objects at the fake")  # fmt: skip
            runs.append(run)
    return runs


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _tally(run: Run, channel: str) -> str:
    found = run.wallet(channel)
    return (f"{LABELS[channel]} {found.get('issued', 0):,} issued ({found.get('new', 0):,} new, "
            f"{found.get('failed', 0):,} failed)")  # fmt: skip


def _split(run: Run, channel: str) -> str:
    """Where one wallet's part of the job went."""
    whole, issue, notify = (run.phase(f"{channel} {p}") for p in ("all", "issue", "notify"))
    text = (f"{LABELS[channel]} {whole:,.1f} s: `issue()` (render, check, rows added) {issue:,.1f} s, "
            f"the commits storing the rows {whole - issue - notify:,.1f} s, `notify` {notify:,.1f} s")  # fmt: skip
    if channel == GOOGLE:
        publish = run.phase(f"{channel} publish")
        text += f" (of which `publish_passes`, the objects built and sent to the fake, {publish:,.1f} s)"
    return text


def render(config: Config, runs: list[Run], load: float) -> list[str]:
    """The section's lines: the table, then the notes."""
    last, profiles = runs[-1], config.operation_profiles
    size = f"{number(profiles)} profiles, 2 wallets"
    total = _median([run.seconds for run in runs])
    rate = _median([run.issued / run.seconds for run in runs])
    rows = [["operation launched to state `launched` (every pass issued, Google's published)", size,
             f"{number(total, 1)} s", "–", "–"],
            ["passes issued per second (both wallets)", size, f"{number(rate)} passes/s", "–", "–"]]  # fmt: skip
    for channel in (APPLE, GOOGLE):
        seconds = _median([run.phase(f"{channel} all") for run in runs])
        issued = _median([float(run.wallet(channel).get("issued", 0)) for run in runs])
        rows.append([f"{LABELS[channel]} passes issued per second (its part of the job)", size,
                     f"{number(issued / seconds if seconds else None)} passes/s", "–", "–"])  # fmt: skip
    failures = last.result["counts"].get("failures", {})
    failed = "; ".join(f"{reason}: {n:,}" for reason, n in failures.items()) or "none"
    match = "equal" if last.fake_objects == last.wallet(GOOGLE).get("issued", 0) else "**differ**"
    audience = last.phase("audience")
    other = last.seconds - audience - sum(last.phase(f"{c} all") for c in (APPLE, GOOGLE))
    requests = ", ".join(f"{kind} {n:,}" for kind, n in sorted(last.requests.items()))
    inserts, span = last.requests.get("POST loyaltyObject", 0), last.insert_span_s
    spanned = f"{span:,.1f} s ({inserts / span:,.0f}/s)" if span else "–"
    reach = last.result["reach"]
    checked = ", ".join(f"{LABELS[c]} {w['reachable']}/{w['checked']}" for c, w in reach["wallets"].items())
    per_run = ", ".join(f"{run.seconds:,.1f} s" for run in runs)
    launch_ms = last.result["launch_s"] * 1000
    notes = [
        "- Run: the operation's launch (`core.operations.service.launch` and its commit, "
        f"{launch_ms:,.0f} ms) and the `core.operations.launch` job it queued, claimed and run by `core.queue.actors.execute_job` "
        "in the benchmark's subprocess (one thread, no `tessera worker`: the queue's pick-up is not "
        f"included), until the operation reads `{last.result['state']}` (job {last.result['job_status']}). "
        f"Per run: {per_run}.",
        f"- Last run: {_tally(last, APPLE)}, {_tally(last, GOOGLE)}; failures: {failed}. The fake Google "
        f"holds {last.fake_objects:,} objects and {last.fake_classes} class(es) at the end: objects and Google "
        f"passes issued {match}. The last Google pass issued: {last.spot}.",
        f"- Where the time goes (last run, {last.seconds:,.1f} s): reading the audience {audience:,.2f} s; "
        f"{_split(last, APPLE)}; {_split(last, GOOGLE)}; the rest {other:,.1f} s. Apple's `notify` finds "
        "no registered device: nothing is pushed, and no .pkpass is signed at issue.",
        f"- The fake's requests: {requests}; its first to last object insert {spanned}. The fake (uvicorn, "
        "one thread of the benchmark process) checks each body against the official schema.",
        f"- Data (not timed): {number(profiles)} profiles written with `COPY` in "
        f"{last.result['load_s']:,.1f} s "
        "(first name, email, email consent, a loyalty member row with a balance but no ledger behind it); "
        "the Apple store card and a Google template of the same design (points from "
        "`loyalty.club.balance`, the member's first name, a QR code, an icon); segment of everyone "
        f"({number(reach['size'])} members); step 6's reach check: {checked}.",
    ]  # fmt: skip
    runs_text = f"median of {len(runs)} runs" if len(runs) > 1 else "one run"
    details = (
        "PostgreSQL, the launch job in one process, the fake Google in a thread of another; "
        f"{runs_text}; load average {load:.1f} at the start"
    )
    return [measured_line(details), "", *markdown_table(HEADERS, rows, left=2), "", *notes]


def run(config: Config) -> list[str]:
    """Measure the operation end to end; the section's lines."""
    load = psutil.getloadavg()[0]
    runs = measure(config)
    return render(config, runs, load)
