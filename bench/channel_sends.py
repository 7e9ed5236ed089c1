"""Channel sends: a campaign to ``channel_recipients`` profiles through a real channel plugin (issue 9).

Two sections, one per plugin, each on its own fresh PostgreSQL + Redis installation
(whatever ``--backends`` says):

- ``fcm_sends``: ``plugins/push_fcm`` against its fake FCM (token endpoint and ``messages:send``);
  aim 2,000 sends/s. Every profile has an ``fcm_token`` identity, one in
  :data:`TWO_TOKENS_EVERY` a second one (a second device).
- ``whatsapp_sends``: ``plugins/whatsapp`` against its fake Cloud API, an approved template with
  two body parameters (the first name); the number's limit ``messages_per_second`` is
  ``whatsapp_limit`` and the fake refuses (130429) what goes beyond the same limit, counted as
  Meta does (a bucket holding one second's worth). Aim: exactly that limit, never above it;
  checked strictly too: at most the limit arriving in any sliding second.

Each fake is the plugin's own (:mod:`bench.channelfakes`), served in a process of its own by
uvicorn and answering every send after 20 ms; the plugin is enabled *live* (not sandbox) for the
tenant with the fake's address as ``api_url`` (the private-gateway setting), so it calls the fake
exactly as it would call Google or Meta (FCM: with a test service account generated here, which
the fake is told to trust through its ``/_sandbox/accounts``). Profiles (first name, email, the
channel's address identity, marketing consent for the channel) are written with ``COPY``
(:func:`bench.orchestrationdata.load_recipients`). In order, as in the orchestration section
(whose helpers run it):

1. The channel's ``deliver`` alone (no database): batches of 200 from one thread of one process.
2. One send job's phases: a campaign to one profile in 50, its launch job and send jobs run one
   after the other in one process (no queue).
3. With ``tessera serve`` and ``tessera worker --processes 2 --threads T`` running, once no job
   is due: ``channel_runs`` campaigns to every profile, confirmed with
   :func:`core.campaigns.service.launch`. Timed from the confirmation call to the last send the
   fake answered 200; checked: every profile reached, no address sent to twice, every delivery
   row ``sent`` (WhatsApp: also no 130429, and at most the limit in any second).
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.channelfakes import FCM, WHATSAPP, FakeServer
from bench.config import Config
from bench.installation import POSTGRES_REDIS, Installation, create_tenant, installation
from bench.orchestrationcampaign import CampaignSample, campaign_once, per_batch
from bench.orchestrationdata import SAMPLE_EVERY, load_recipients
from bench.orchestrationsetup import LATENCY_MS, Setup, cpu_text, wait_idle, worker_env
from bench.processes import flags, run_module, running
from bench.report import markdown_table, measured_line, number, progress

FCM_NAME, WHATSAPP_NAME = "fcm_sends", "whatsapp_sends"
WORKER_PROCESSES = 2
FCM_AIM_PER_S = 2_000.0
TWO_TOKENS_EVERY = 10  # one profile in 10 has a second device
START_S = 6.0  # the workers' sweeper queues the periodic jobs on its first pass, 5 s after it starts
CLIENT_BATCHES = 10
HEADERS = "measurement | size | median | aim | ratio to aim".split(" | ")
FCM_PROJECT = "bench-shop"
WHATSAPP_TEMPLATE = "order_update"  # approved in the fake's business account, two body parameters


def fcm_token(index: int, device: int = 0) -> str:
    """The registration token of device ``device`` of recipient ``index`` (FCM's alphabet)."""
    return f"bench{index:07d}d{device}:APA91bH7kq2Xw9-bench_token"


def wa_id(index: int) -> str:
    """The WhatsApp id (phone number, digits) of recipient ``index``."""
    return f"49151{index:08d}"


def _index(kind: str, address: str) -> int:
    return int(address[5:12]) if kind == FCM else int(address[5:])


@dataclass(frozen=True)
class Plugin:
    """What differs between the two sections."""

    name: str  # the section
    kind: str  # the fake
    channel: str
    label: str
    addresses: Callable[[int], Sequence[tuple[str, str]]]
    content: dict[str, Any]  # the campaign's message (core.messages.personalization.MessageTemplate)
    client_template: dict[str, Any]  # the channel's template fields for ``deliver`` alone
    client_address: str


FCM_PLUGIN = Plugin(
    FCM_NAME, FCM, "push_fcm", "FCM",
    lambda i: [("fcm_token", fcm_token(i, d)) for d in range(2 if i % TWO_TOKENS_EVERY == 0 else 1)],
    {"variants": {"en": {"title": "Winter sale", "body": "Hello {{ traits.first_name }}, 20 % off today."}},
     "fallback": "en"},
    {"title": "Winter sale", "body": "Hello Camille, 20 % off today."}, "client{n:09d}:APA91bH7kq2Xw9-bench",
)  # fmt: skip
WHATSAPP_PLUGIN = Plugin(
    WHATSAPP_NAME, WHATSAPP, "whatsapp", "WhatsApp", lambda i: [("whatsapp_id", wa_id(i))],
    {"variants": {"en": {"kind": "template", "template_name": WHATSAPP_TEMPLATE, "language": "en_US",
                         "body_parameters": "{{ traits.first_name }}\nWINTER20"}}, "fallback": "en"},
    {"kind": "template", "template_name": WHATSAPP_TEMPLATE, "language": "en_US",
     "body_parameters": ["Camille", "WINTER20"]}, "4916{n:09d}",
)  # fmt: skip


def channel_config(plugin: Plugin, fake: FakeServer, config: Config) -> dict[str, Any]:
    """The tenant's live config of the channel, pointed at the fake (FCM: the fake told to trust it)."""
    if plugin.kind == FCM:
        from tessera_push_fcm import testkeys  # the harness imports Tessera's plugins only here

        account = testkeys.test_service_account()  # this process's: the fake is told to trust it
        fake.post("/_sandbox/accounts", {"client_email": account["client_email"],
                                         "public_key_pem": testkeys.public_key_pem()})  # fmt: skip
        return {"project_id": FCM_PROJECT, "service_account_json": json.dumps(account), "api_url": fake.url}
    from tessera_whatsapp.sandbox import sandbox_config

    return {**sandbox_config(), "api_url": fake.url, "messages_per_second": config.whatsapp_limit}


def measure_client(setup: Setup, plugin: Plugin, path: str) -> dict[str, Any]:
    """The channel's ``deliver`` alone against the fake, one thread of one process."""
    options = flags(tenant=setup.tenant.slug, channel=plugin.channel, config=path,
                    template=json.dumps(plugin.client_template), address=plugin.client_address, threads=1,
                    batches=CLIENT_BATCHES)  # fmt: skip
    result = run_module("bench.channel_sendsjobs", ["client", *options], setup.inst.env,
                        setup.inst.data_dir / "client.log", 600.0)  # fmt: skip
    progress(f"{plugin.name}: deliver alone: {result['per_second']:,.0f} messages/s, "
             f"{result['median_batch_ms']:.0f} ms per batch of 200, {result['cpu_ms_per_message']:.2f} ms CPU "
             f"per message; {result['outcomes']}")  # fmt: skip
    return result


def attempts(database_url: str) -> dict[str, int]:
    """Real (not test) deliveries by their number of attempts (more than one: retried)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT attempts, count(*) FROM delivery WHERE NOT test AND campaign_id = "
                                     "(SELECT max(id) FROM campaign) GROUP BY attempts ORDER BY attempts")).all()  # fmt: skip
    finally:
        engine.dispose()
    return {str(a): int(n) for a, n in rows}


def keep_logs(inst: Installation, name: str) -> Path:
    """Copy the installation's logs (worker, server, jobs) to a folder that outlives it."""
    folder = Path(tempfile.gettempdir()) / f"tessera-{name}-logs"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for log in inst.data_dir.glob("*.log"):
        shutil.copy(log, folder / log.name)
    return folder


def deliver_errors(inst: Installation) -> dict[str, int]:
    """Batches whose ``deliver`` raised (the core then fails the whole batch, retryably), by the
    exception's last line, from the workers' logs."""
    found: dict[str, int] = {}
    for log in inst.data_dir.glob("worker-*.log"):
        records = re.split(r"\n(?=\[\d{4}-\d\d-\d\d )", log.read_text(errors="replace"))
        for record in records:
            if "failed to deliver" not in record.split("\n", 1)[0]:
                continue
            lines = [line for line in record.splitlines() if re.match(r"^[\w.]+(Error|Exception)\b", line)]
            name = lines[-1].split(":", 1)[0] if lines else "unknown"
            found[name] = found.get(name, 0) + 1
    return found


def checks(plugin: Plugin, sample: CampaignSample, config: Config) -> dict[str, Any]:
    """What the fake and the database say about one campaign (the addresses dropped afterwards)."""
    extra = sample.extra
    addresses = extra.pop("addresses", [])
    reached = {_index(plugin.kind, a) for a in addresses}
    tokens = sum(len(plugin.addresses(i)) for i in range(sample.recipients))
    sent = sample.states.get("sent", 0)
    found: dict[str, Any] = {"profiles_reached": len(reached), "addresses": tokens, "sent_rows": sent,
             "rows": sum(sample.states.values())}  # fmt: skip
    failed = {"a profile not reached": len(reached) != sample.recipients,
              "an address sent to more than once": extra.get("repeated", 0) != 0 or sample.accepted != sample.distinct,
              "a delivery row not `sent`": not sent == sample.recipients == found["rows"],
              "messages neither one per profile nor one per address": sample.accepted not in (sample.recipients, tokens)}  # fmt: skip
    if plugin.kind == WHATSAPP:
        failed["130429 refusals"] = extra.get("rate_limited", 0) != 0
        failed["more than the limit arriving within some second"] = (
            extra.get("max_per_second", 0) > config.whatsapp_limit
        )
    found["failed"] = [name for name, bad in failed.items() if bad]
    found["ok"] = not found["failed"]
    extra.update(found)
    return found


def _median(samples: list[CampaignSample], value: Callable[[CampaignSample], float]) -> float:
    return statistics.median(value(s) for s in samples)


def _steady(s: CampaignSample) -> float:
    """Sends per second from the first accepted message to the last."""
    return (s.accepted - 1) / max(1e-9, s.last_s - s.first_s)


def render(plugin: Plugin, config: Config, measured: dict[str, Any]) -> list[str]:
    """The section's lines: the table, then the notes."""
    samples: list[CampaignSample] = measured["campaigns"]
    limit = float(config.whatsapp_limit)
    aim = FCM_AIM_PER_S if plugin.kind == FCM else limit
    rate = _median(samples, lambda s: s.per_second)
    size = f"{number(config.channel_recipients)} recipients"
    aim_text = f"{number(aim)} sends/s" + ("" if plugin.kind == FCM else " (the limit)")
    rows = [
        ["campaign: confirmation to the last message the fake accepted", size, f"{number(rate)} sends/s",
         aim_text, f"{rate / aim:.2f}"],
        ["campaign: first to last message accepted", size, f"{number(_median(samples, _steady))} sends/s",
         aim_text, f"{_median(samples, _steady) / aim:.2f}"],
        *([["campaign: deliveries (profiles, each pushed to all its devices) per second, confirmation to last",
            size, f"{number(_median(samples, lambda s: s.recipients / s.last_s))} deliveries/s", "–", "–"]]
          if plugin.kind == FCM else []),
        ["campaign: the confirmation call (plans every recipient)", size,
         f"{_median(samples, lambda s: s.confirm_s):.1f} s", "–", "–"],
        ["campaign: launch job done (deliveries and send jobs written)", size,
         f"{_median(samples, lambda s: s.launched_s):.1f} s", "–", "–"],
        ["campaign: first message accepted", size, f"{_median(samples, lambda s: s.first_s):.1f} s", "–", "–"],
    ]  # fmt: skip
    if plugin.kind == WHATSAPP:
        most = max(s.extra.get("max_per_second", 0) for s in samples)
        rows.append(["the fake: most sends arriving in any 1 s (max over runs)", size, f"{number(most)}",
                     f"≤ {number(limit)}", f"{most / limit:.2f}"])  # fmt: skip
    return [measured_line(_details(plugin, config, measured)), "", *markdown_table(HEADERS, rows, left=2), "",
            *_notes(plugin, config, measured)]  # fmt: skip


def _details(plugin: Plugin, config: Config, measured: dict[str, Any]) -> str:
    runs = len(measured["campaigns"])
    runs_text = f"median of {runs} campaigns" if runs > 1 else "one campaign"
    limit = f", `messages_per_second` {config.whatsapp_limit} and the fake's rate limit the same" if (
        plugin.kind == WHATSAPP) else ", `concurrency` its default (64)"  # fmt: skip
    return (f"PostgreSQL + Redis; `tessera worker --processes {WORKER_PROCESSES} --threads "
            f"{config.channel_threads}`; the plugin live{limit}; its fake in a process of its own answering "
            f"after {LATENCY_MS:.0f} ms; {runs_text}; load average {measured['load']:.1f} at the start")  # fmt: skip


def _notes(plugin: Plugin, config: Config, measured: dict[str, Any]) -> list[str]:
    samples: list[CampaignSample] = measured["campaigns"]
    found = [s.extra for s in samples]
    ok = all(f.get("ok") for f in found)
    last = samples[-1]
    statuses = ", ".join(f"{k}: {number(v)}" for k, v in last.extra.get("statuses", {}).items())
    if plugin.kind == FCM:
        what = (f"{number(last.recipients)} profiles with {number(last.extra['addresses'])} registration tokens "
                f"(one in {TWO_TOKENS_EVERY} has two): the fake accepted {number(last.accepted)} messages to "
                f"{number(last.distinct)} distinct tokens, reaching {number(last.extra['profiles_reached'])} "
                f"profiles; tokens sent to more than once {number(last.extra.get('repeated', 0))}; access tokens "
                f"issued {last.extra.get('tokens_issued')}; most sends in flight at the fake "
                f"{number(last.extra.get('max_in_flight'))}")  # fmt: skip
    else:
        what = (f"the fake accepted {number(last.accepted)} messages to {number(last.distinct)} distinct WhatsApp "
                f"ids ({number(last.extra['profiles_reached'])} profiles reached); ids sent to more than once "
                f"{number(last.extra.get('repeated', 0))}; refused with 130429 (rate limit hit) "
                f"{number(last.extra.get('rate_limited'))}; most arrivals in any 1 s "
                f"{number(last.extra.get('max_per_second'))} for a limit of {number(config.whatsapp_limit)}")  # fmt: skip
    failures = sorted({name for f in found for name in f.get("failed", [])})
    verdict = "every check passed in every run" if ok else f"**failed: {'; '.join(failures)}**"
    rows = f"delivery rows by state {last.states}"
    cpu = {("fake" if k == "provider" else k): statistics.median(s.cpu_s.get(k, 0.0) for s in samples)
           for k in samples[0].cpu_s}  # fmt: skip
    batch, client = measured["batch"], measured["client"]
    medians = batch["median_ms"]
    phases = ", ".join(f"{name} {ms:.0f} ms" for name, ms in medians.items() if name != "total")
    resent = max(s.resent for s in samples)
    per_run = ", ".join(f"{s.per_second:,.0f}/s" for s in samples)
    pause = max(s.extra.get("longest_pause_s", 0.0) for s in samples)
    cap = measured.get("capability_rate")
    messages = max(1, _median(samples, lambda s: s.accepted))
    per_message = ", ".join(f"{name} {seconds * 1000 / messages:.2f} ms" for name, seconds in cpu.items()
                            if name != "others")  # fmt: skip
    capped = (f"- The channel declares `rate_limit_per_second={cap:g}` (`Capabilities`): the core's token bucket "
              f"(Redis, shared by every worker) lets at most {cap:g} deliveries a second through, whatever the "
              f"machine could do." if cap else "- The channel declares no `rate_limit_per_second`: the core's token "
              "bucket does not limit it; the plugin keeps each number to its limit as sends arrive (the core's "
              "`within_limit`, shared by every worker process through Redis).")  # fmt: skip
    return [
        capped,
        f"- Checks ({verdict}): {what}; {rows}; the fake's answers by HTTP status: {statuses}. Per run: "
        f"{per_run}. Longest pause between two accepted sends (max over runs): {pause * 1000:,.0f} ms.",
        f"- CPU during a campaign of {_median(samples, lambda s: s.last_s):.0f} s on {psutil.cpu_count()} cores "
        f"(median): {cpu_text(cpu)} (`others`: the rest of the machine, other work included); per message accepted: "
        f"{per_message}; {number(last.send_jobs)} send jobs, of which the sweeper queued again up to "
        f"{number(resent)}; deliveries by attempts {last.extra.get('attempts')}; batches whose `deliver` raised "
        f"(each then failed whole, retryably, by the core): {measured.get('deliver_errors') or 'none'}.",
        f"- One send job of 200 deliveries run alone (median of {max(1, batch['jobs'] - 1)} jobs, campaign to "
        f"{number(config.channel_recipients // SAMPLE_EVERY)} profiles): {medians['total']:.0f} ms: {phases}. "
        f"Its launch job: {batch['launch_s'] * 1000:.0f} ms.",
        f"- The plugin's `deliver` alone (one thread of one process, batches of 200, no database): "
        f"{number(client['per_second'])} messages/s, {client['median_batch_ms']:.0f} ms per batch, "
        f"{client['cpu_ms_per_message']:.2f} ms of CPU per message; results {client['outcomes']}.",
        f"- Data (not timed): {number(config.channel_recipients)} profiles written with `COPY` in "
        f"{measured['load_s']:.1f} s.",
    ]  # fmt: skip


def measure(plugin: Plugin, config: Config) -> dict[str, Any]:
    """A fresh installation, the fake, the plugin live; the deliver-alone, per-batch and campaign figures."""
    recipients = config.channel_recipients
    measured: dict[str, Any] = {"load": psutil.getloadavg()[0]}
    limit = config.whatsapp_limit if plugin.kind == WHATSAPP else 0
    from core.plugins import get_host

    measured["capability_rate"] = get_host().channels[plugin.channel].item.capabilities.rate_limit_per_second
    with installation(POSTGRES_REDIS) as inst, FakeServer(plugin.kind, LATENCY_MS, limit) as fake:
        tenant = create_tenant(inst)
        setup = Setup(inst, tenant, fake, recipients, 0.0)
        path = inst.data_dir / f"{plugin.channel}.json"
        path.touch(mode=0o600)
        path.write_text(json.dumps(channel_config(plugin, fake, config)))
        setup.job("setup", channel=plugin.channel, config=path)
        measured["load_s"] = load_recipients(tenant.database_url, recipients, plugin.channel,
                                             addresses=plugin.addresses)  # fmt: skip
        progress(f"{plugin.name}: {recipients:,} recipients loaded in {measured['load_s']:.1f} s")
        measured["client"] = measure_client(setup, plugin, str(path))
        fake.reset()
        content = json.dumps(plugin.content)
        measured["batch"] = per_batch(setup, plugin.name, channel=plugin.channel, content=content)
        inst = worker_env(inst, config.channel_threads, 0)
        with running(inst, worker_processes=WORKER_PROCESSES) as server:
            time.sleep(START_S)
            waited = wait_idle(tenant.database_url)
            progress(f"{plugin.name}: workers ready; their first jobs done after {waited:.1f} s more")
            samples = []
            for index in range(config.channel_runs):
                sample = campaign_once(setup, server, index + 1, fake=fake,
                                       options={"channel": plugin.channel, "content": content})  # fmt: skip
                sample.extra["attempts"] = attempts(tenant.database_url)
                progress(f"{plugin.name}: campaign {index + 1}: {sample.accepted:,} accepted in {sample.last_s:.1f} s "
                         f"= {sample.per_second:,.0f}/s (confirmed in {sample.confirm_s:.1f} s, launch job done at "
                         f"{sample.launched_s:.1f} s, first send at {sample.first_s:.1f} s); first to last "
                         f"{_steady(sample):,.0f}/s; {sample.states}; attempts {sample.extra['attempts']}; "
                         f"{sample.send_jobs} send jobs, {sample.resent} re-sent by the sweeper; CPU "
                         f"{cpu_text(sample.cpu_s)}")  # fmt: skip
                samples.append(sample)
        measured["deliver_errors"] = deliver_errors(inst)
        progress(f"{plugin.name}: logs kept in {keep_logs(inst, plugin.name)}; deliver raised: "
                 f"{measured['deliver_errors']}")  # fmt: skip
        for sample in samples:
            found = checks(plugin, sample, config)
            progress(f"{plugin.name}: checks {found}; fake {sample.extra}")
        measured["campaigns"] = samples
    return measured


def run_fcm(config: Config) -> list[str]:
    """The FCM section's lines."""
    return render(FCM_PLUGIN, config, measure(FCM_PLUGIN, config))


def run_whatsapp(config: Config) -> list[str]:
    """The WhatsApp section's lines."""
    return render(WHATSAPP_PLUGIN, config, measure(WHATSAPP_PLUGIN, config))
