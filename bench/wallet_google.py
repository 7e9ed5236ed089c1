"""Google Wallet: objects prepared and save links signed per second (one core, the whole machine).

What is timed is what the core asks of the Google plugin when a customer opens their pass link:
``GoogleWalletChannel.save_url(ctx, rendered)`` on an already rendered pass: the loyalty class and
object built from it (every text with its French and German ``translatedValues``), and the save
JWT carrying both, signed RS256 with the service account's key (parsed once per key file, as the
channel does). Separately: the same plus ``check_pass`` (Google's rules and the official schema,
which the core runs when it issues or re-issues a pass).

The pass is the Apple benchmark's realistic store card (:func:`tessera_wallet_apple.testchain.store_card`)
with public image addresses, each with its own serial and points balance. Aim: 2,000 links per
second per core. One save link of the last run is checked: the JWT verifies with the test service
account's public key and its payload validates against the official schema.

docs/benchmarks.md needs the section's markers (``<!-- wallet_google:begin -->`` /
``<!-- wallet_google:end -->``).
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

import psutil

from bench.config import Config
from bench.rates import one_core, whole_machine
from bench.report import markdown_table, measured_line, number, progress

if TYPE_CHECKING:
    from core.plugin_api import RenderedPass

NAME = "wallet_google"
AIM_PER_CORE = 2_000.0
PROCESSES = 2
DURATION_S = 5.0
QUICK_DURATION_S = 1.0
WARMUP = 50
HEADERS = "measurement | size | median | aim | ratio to aim".split(" | ")


class LinkMaker:
    """The Google channel, a tenant context with the test service account, and the card to vary."""

    checked = False

    def __init__(self) -> None:
        from tessera_wallet_apple import testchain  # the bench harness itself does not import Tessera
        from tessera_wallet_google.channel import GoogleWalletChannel, GoogleWalletConfig

        from core.plugin_api import ChannelContext

        self.channel = GoogleWalletChannel()
        self.config = GoogleWalletConfig.model_validate(self.channel.sandbox_config())
        self.ctx = ChannelContext(
            tenant="bench",
            config=self.config,
            sandbox=False,
            sandbox_url="",
            public_url="https://shop.example",
        )
        images = {
            kind: f"https://shop.example/w/bench/image/{n}-sig.png"
            for n, kind in enumerate(("icon", "logo", "strip"))
        }
        self.card: RenderedPass = testchain.store_card().model_copy(
            update={"image_urls": images, "template_key": "club_card"}
        )
        self.points = next(f for f in self.card.fields if f.key == "points")

    def rendered(self, member: int) -> RenderedPass:
        """The store card of member number ``member``: its own object id and points."""
        points = self.points.model_copy(update={"value": str(1000 + member % 5000)})
        fields = tuple(points if f.key == "points" else f for f in self.card.fields)
        serial = f"{self.config.issuer_id}.bench{member:012d}"
        return self.card.model_copy(update={"serial": serial, "fields": fields})

    def make(self, member: int) -> str:
        """One signed save link (and, for :class:`CheckedLinkMaker`, the pass checked first)."""
        rendered = self.rendered(member)
        if self.checked:
            assert not self.channel.check_pass(self.ctx, rendered)
        link = self.channel.save_url(self.ctx, rendered)
        assert link is not None
        return link


class CheckedLinkMaker(LinkMaker):
    """The same, with the checks the core runs when it issues the pass."""

    checked = True


def verify(link: str) -> bool:
    """Whether the link's JWT verifies with the service account's public key and carries valid objects."""
    import jwt
    from tessera_wallet_google.schema import schema_problems
    from tessera_wallet_google.testkeys import service_account_public_key_pem

    token = link.rsplit("/", 1)[1]
    claims = jwt.decode(token, service_account_public_key_pem(), algorithms=["RS256"], audience="google")
    return claims.get("typ") == "savetowallet" and schema_problems("Resources", claims["payload"]) == []


def run(config: Config) -> list[str]:
    """Measure save links per second (one core, whole machine, and with the checks); the section's lines."""
    load = psutil.getloadavg()[0]
    seconds = QUICK_DURATION_S if config.quick else DURATION_S
    runs = max(1, config.runs)
    progress("wallet_google: building the test service account and the card")
    core_rates, cpu_rates, link = one_core(LinkMaker(), runs, seconds, NAME, WARMUP)
    machine_rates = whole_machine(LinkMaker, runs, seconds, PROCESSES, NAME, WARMUP)
    checked_rates, _, _ = one_core(CheckedLinkMaker(), runs, seconds, NAME + " (checked)", WARMUP)
    verified = verify(link)
    core, cpu, machine, checked = (
        statistics.median(r) for r in (core_rates, cpu_rates, machine_rates, checked_rates)
    )
    size = f"loyalty card, link of {len(link):,} characters"
    rows = [
        ["objects prepared and save links signed, one core", size, f"{number(core)} links/s",
         f"{number(AIM_PER_CORE)} links/s", f"{core / AIM_PER_CORE:.2f}"],
        ["the same, per CPU second the process got", size, f"{number(cpu)} links/s",
         f"{number(AIM_PER_CORE)} links/s", f"{cpu / AIM_PER_CORE:.2f}"],
        [f"the same, whole machine ({PROCESSES} processes)", size, f"{number(machine)} links/s", "–", "–"],
        ["with the checks run at issue (Google's rules, official schema), one core", size,
         f"{number(checked)} links/s", "–", "–"],
    ]  # fmt: skip
    check = "verifies and its payload validates" if verified else "**did not verify**"
    notes = [
        "- Timed: `GoogleWalletChannel.save_url` on a rendered store card (class and object with fr and de "
        "`translatedValues`, QR code, 3 stores, images by address; the JWT carries both, RS256 with the test "
        f"service account's key parsed once). {seconds:g} s per run after {WARMUP} warm-up links. A link "
        f"of the last run {check} (the service account's public key; schema `Resources`).",
        "- The checks at issue validate the object against the official schema with the schema compiled "
        "to Python (fastjsonschema); the interpreted validator (jsonschema) took 1.25 ms per object and "
        'now only explains a body that failed. A whole operation is measured under "Wallet operation".',
    ]
    details = (
        f"{PROCESSES} worker processes for the machine figure; median of {runs} run(s) of {seconds:g} s; "
        f"load average {load:.1f} at the start"
    )
    return [measured_line(details), "", *markdown_table(HEADERS, rows, left=2), "", *notes]
