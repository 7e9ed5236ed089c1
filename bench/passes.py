"""Passes: signed Apple Wallet .pkpass files generated per second (one core, the whole machine), and
the time from a purchase event to the APNs push that tells the phone its pass changed.

What is timed is what the core asks of the Apple plugin for every pass it issues or updates:
``AppleWalletChannel.build_pass(ctx, rendered)`` on an already rendered pass: pass.json, the
pass.strings files, manifest.json, the CMS signature (RSA 2048, SHA-256, with the WWDR
intermediate) and the ZIP archive. Rendering the pass and storing it are the core's and not included.

The pass is a realistic store card (:func:`tessera_wallet_apple.testchain.store_card`): fields in
every area with a change message and a link, a QR code, a location, icon, logo and a photo strip at
scales 1, 2 and 3 (~500 KB), French and German translations. Each pass gets its own serial, token
and points balance; the images are the same objects for every pass, as the core hands a template's
images. It is signed with the plugin's generated test chain (RSA 2048, like Apple's).

1. One core: this process builds passes for ``DURATION_S`` seconds after a warm-up; ``runs`` times.
   Reported per second of wall time and per CPU second the process got (less sensitive to other
   work on the machine).
2. The whole machine: ``PROCESSES`` spawned processes do the same at once (started together at a
   barrier), their rates added; ``runs`` times.
3. Signing alone on one core, to show how much of a pass is its signature.

After each part one pass's signature is checked with ``openssl cms -verify`` against the test chain.
Aims: 500 passes per second per core, 1,000 for the machine. The median over the runs is reported.

4. Latency (:mod:`bench.passeslatency`, PostgreSQL + Redis with ``tessera worker --processes 2``):
   from a purchase event sent to ``/v1/track`` to the APNs push for the customer's device reaching
   a fake APNs, per purchase; median and 99th percentile. Aim: under 1 s at the 99th percentile.

docs/benchmarks.md needs the section's markers (``<!-- passes:begin -->`` / ``<!-- passes:end -->``)
under a heading that says what is measured, as the other sections have.
"""

from __future__ import annotations

import io
import shutil
import statistics
import subprocess
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from bench.config import Config
from bench.rates import one_core, whole_machine
from bench.report import markdown_table, measured_line, number, progress

if TYPE_CHECKING:
    from core.plugin_api import RenderedPass

NAME = "passes"
AIM_PER_CORE = 500.0
AIM_MACHINE = 1_000.0
PROCESSES = 2
DURATION_S = 5.0
QUICK_DURATION_S = 1.0
WARMUP_PASSES = 30
HEADERS = "measurement | size | median | aim | ratio to aim".split(" | ")


@dataclass
class Measured:
    """One measurement's table rows and notes; :func:`run` puts every measurement in one section."""

    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    details: str = ""  # for the "Measured ..." first line


# --- building passes (runs in this process and in the spawned ones) ------------------------------
class PassMaker:
    """The Apple channel, a tenant context with the test certificate, and the store card to vary."""

    def __init__(self) -> None:
        from tessera_wallet_apple import testchain  # the bench harness itself does not import Tessera
        from tessera_wallet_apple.channel import AppleWalletChannel, AppleWalletConfig

        from core.plugin_api import ChannelContext

        self.channel = AppleWalletChannel()
        config = AppleWalletConfig.model_validate(testchain.chain().p12_config())
        self.ctx = ChannelContext(
            tenant="bench", config=config, sandbox=False, sandbox_url="", public_url="http://127.0.0.1"
        )
        self.card: RenderedPass = testchain.store_card()
        self.points = next(f for f in self.card.fields if f.key == "points")

    def rendered(self, member: int) -> RenderedPass:
        """The store card of member number ``member``: its own serial, token and points."""
        serial = f"BENCH-{member:09d}"
        points = self.points.model_copy(update={"value": str(1000 + member % 5000)})
        fields = tuple(points if f.key == "points" else f for f in self.card.fields)
        token = f"token-{member:026d}"
        return self.card.model_copy(
            update={"serial": serial, "authentication_token": token, "fields": fields}
        )

    def make(self, member: int) -> bytes:
        """One signed .pkpass, as the core gets it from the channel."""
        content: bytes = self.channel.build_pass(self.ctx, self.rendered(member)).content
        return content


def signing_alone(runs: int, seconds: float, manifest: bytes) -> list[float]:
    """Signatures per second over this manifest.json, in this process, per run."""
    from tessera_wallet_apple import certificates, signing, testchain

    chain = testchain.chain()
    identity = certificates.load_p12(chain.p12_base64(), chain.p12_password, chain.wwdr_pem)
    rates = []
    for _ in range(runs):
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            signing.sign_manifest(manifest, identity)
            count += 1
        rates.append(count / (time.perf_counter() - started))
    return rates


def verify(pkpass: bytes) -> bool:
    """Whether the pass's signature verifies with ``openssl cms -verify`` against the test chain."""
    from tessera_wallet_apple import testchain

    if shutil.which("openssl") is None:
        return False
    with zipfile.ZipFile(io.BytesIO(pkpass)) as archive, tempfile.TemporaryDirectory() as folder:
        path = Path(folder)
        (path / "signature").write_bytes(archive.read("signature"))
        (path / "manifest.json").write_bytes(archive.read("manifest.json"))
        (path / "ca.pem").write_text(testchain.chain().ca_bundle_pem)
        command = ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", "signature",
                   "-content", "manifest.json", "-CAfile", "ca.pem", "-purpose", "any", "-out", "checked"]  # fmt: skip
        result = subprocess.run(command, cwd=path, capture_output=True, timeout=60, check=False)
        return result.returncode == 0


def _spread(rates: list[float]) -> str:
    return f"{number(min(rates))}–{number(max(rates))}/s" if len(rates) > 1 else f"{number(rates[0])}/s"


def measure_generation(config: Config) -> Measured:
    """Signed .pkpass files per second on one core and on the whole machine, and signing alone."""
    load = psutil.getloadavg()[0]
    seconds = QUICK_DURATION_S if config.quick else DURATION_S
    runs = max(1, config.runs)
    progress("passes: generating the test certificate chain and the store card")
    core_rates, cpu_rates, sample = one_core(PassMaker(), runs, seconds, NAME, WARMUP_PASSES)
    machine_rates = whole_machine(PassMaker, runs, seconds, PROCESSES, NAME, WARMUP_PASSES)
    with zipfile.ZipFile(io.BytesIO(sample)) as archive:
        infos = archive.infolist()
        manifest = archive.read("manifest.json")
    sign_rates = signing_alone(runs, seconds, manifest)
    verified = verify(sample)

    core, cpu, machine, sign = (
        statistics.median(r) for r in (core_rates, cpu_rates, machine_rates, sign_rates)
    )
    images = sum(info.file_size for info in infos if info.filename.endswith(".png"))
    size = f"store card, {len(sample) / 1024:,.0f} KB, {len(infos)} files"
    rows = [
        ["signed .pkpass files generated, one core", size, f"{number(core)} passes/s",
         f"{number(AIM_PER_CORE)} passes/s", f"{core / AIM_PER_CORE:.2f}"],
        ["the same, per CPU second the process got", size, f"{number(cpu)} passes/s",
         f"{number(AIM_PER_CORE)} passes/s", f"{cpu / AIM_PER_CORE:.2f}"],
        [f"the same, whole machine ({PROCESSES} processes)", size, f"{number(machine)} passes/s",
         f"{number(AIM_MACHINE)} passes/s", f"{machine / AIM_MACHINE:.2f}"],
        ["signing alone (CMS, RSA 2048, SHA-256), one core", f"manifest.json, {len(manifest):,} bytes",
         f"{number(sign)} signatures/s", "–", "–"],
    ]  # fmt: skip
    check = "verifies" if verified else "**could not be verified** (is openssl installed?)"
    notes = [
        f"- Pass: a store card of {len(sample) / 1024:,.0f} KB: pass.json, 9 PNGs stored as they are "
        f"({images / 1024:,.0f} KB: icon, logo and a photo strip at 1x, 2x and 3x), pass.strings for "
        "en, fr and de (UTF-16), manifest.json and the signature. Each pass has its own serial, token "
        f"and points. Per-run rates: one core {_spread(core_rates)} ({_spread(cpu_rates)} per CPU second "
        "it got, which other work on the machine lowers less), whole machine "
        f"{_spread(machine_rates)}, signing {_spread(sign_rates)}.",
        f"- Timed: `AppleWalletChannel.build_pass` on a rendered pass ({seconds:g} s per run after "
        f"{WARMUP_PASSES} warm-up passes; the machine figure adds the rates of {PROCESSES} spawned processes "
        "started together). Not timed: rendering the pass and storing it (the core's). The signature "
        f"of a pass of the last run {check} with `openssl cms -verify` against the generated test chain.",
        f"- Signing is {core / sign * 100:.0f} % of a pass's time on one core ({1000 / sign:.2f} ms of "
        f"{1000 / core:.2f} ms): the RSA 2048 private-key operation is the floor of the per-pass cost.",
    ]
    details = (
        f"{PROCESSES} worker processes for the machine figure; median of {runs} run(s) of {seconds:g} s; "
        f"load average {load:.1f} at the start"
    )
    return Measured(rows, notes, details)


def render(measured: list[Measured]) -> list[str]:
    """The lines of the section (between its markers)."""
    rows = [row for part in measured for row in part.rows]
    notes = [note for part in measured for note in part.notes]
    details = "; ".join(part.details for part in measured if part.details)
    return [measured_line(details), "", *markdown_table(HEADERS, rows, left=2), "", *notes]


def run(config: Config) -> list[str]:
    """Measure pass generation, then the latency from a purchase event to the APNs push; the section's lines.

    Each measurement returns a :class:`Measured`; their rows land in the same table.
    """
    from bench.passeslatency import measure_latency  # it imports Measured from here

    measured = [measure_generation(config), measure_latency(config)]
    return render(measured)
