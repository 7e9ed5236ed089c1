"""A WhatsApp conversation end to end through the WhatsApp plugin and Tessera's webhook route, against
the plugin's fake Cloud API served on a port (the config's gateway ``api_url``): a customer writes,
which lands on their profile and opens their window; free-form text then reaches them and is
suppressed for others; a template goes to everyone with the add-to-wallet link in its button;
statuses count once however often Meta replays them; STOP withdraws their consent; the synced
templates are shown in the settings."""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, select
from tessera_whatsapp.sandbox import FakeTemplate, FakeWhatsApp, sandbox_config
from tessera_whatsapp.sending import PAIR_SECONDS

from core.consent.service import current
from core.db.engines import control_session, tenant_engine
from core.delivery.models import Delivery, DeliveryState
from core.ingest.models import Event
from core.ingest.service import accept
from core.passes.models import PassTemplate
from core.plugins import get_host
from core.profiles.jobs import process_events
from core.profiles.service import find_by_identifier
from core.queue.models import Job
from core.reporting.report import report
from core.settings import get_settings
from core.tenancy.plugin_settings import save_channel_config, set_enabled
from core.tenancy.tenants import get_tenant
from tests.fakes.provider import serving_app
from tests.support import launch_to_consenting, login, make_due, run_due_jobs

TENANT = "shop"
CHANNEL = "whatsapp"
DELIVERY = Delivery.__table__  # type: ignore[attr-defined]
JOB = Job.__table__  # type: ignore[attr-defined]


def _whatsapp(session: Session, name: str, content: dict[str, Any]) -> int:
    return launch_to_consenting(
        session, TENANT, CHANNEL, name, {"variants": {"en": content}, "fallback": "en"}
    )


def _states(session: Session, campaign_id: int, people: dict[str, str]) -> dict[str, tuple[str, str | None]]:
    session.expire_all()
    rows = session.exec(select(Delivery).where(Delivery.campaign_id == campaign_id)).all()
    names = {profile_id: name for name, profile_id in people.items()}
    return {names[r.profile_id]: (r.state, r.reason) for r in rows}


def test_a_whatsapp_conversation_from_first_message_to_opt_out(installation) -> None:
    database = installation.tenant(TENANT).tenant.database
    # Numbers of their own per run: the pair limit's claims outlive a test in this process (or Redis).
    ann, bob = (f"336{secrets.randbelow(10**8):08d}" for _ in range(2))
    fake = FakeWhatsApp()
    card_base = get_settings().public_url.rstrip("/") + "/"
    fake.templates.append(FakeTemplate(
        "card_ready", "en_US", body_params=1, body_text="Hi {{1}}, your club card is ready.",
        buttons=[{"type": "URL", "text": "Add to wallet", "url": card_base + "{{1}}"}],
    ))  # fmt: skip
    with serving_app(fake.app) as url:
        with control_session() as control:
            tenant = get_tenant(control, TENANT)
            set_enabled(control, tenant, get_host(), CHANNEL, True, sandbox=False)
            save_channel_config(control, tenant, get_host(), CHANNEL, {**sandbox_config(), "api_url": url})
            control.commit()
        with Session(tenant_engine(database), expire_on_commit=False) as session:
            session.add(PassTemplate(key="club_card", name="Club card", channel="wallet_apple"))
            now = datetime.now(UTC).isoformat()
            people = [{"type": "identify", "userId": user, "timestamp": now, "traits": {
                "first_name": user.title(), "whatsapp_id": number, "consent": {CHANNEL: True}}}
                for user, number in (("ann", ann), ("bob", bob))]  # fmt: skip
            assert not accept(session, TENANT, people).rejected
            process_events(TENANT, {})
            ids = {user: find_by_identifier(session, "user_id", user).id for user in ("ann", "bob")}

            with installation.client() as client:

                def notify(payload: dict[str, Any]) -> int:
                    raw, headers = fake.signed(payload)
                    return client.post(
                        f"/webhooks/{TENANT}/{CHANNEL}", content=raw, headers=headers
                    ).status_code

                fake.inbound(ann)  # Meta opens her window as she writes
                assert notify(fake.inbound_payload(ann, "Is my order on its way?", name="Ann")) == 200
                process_events(TENANT, {})
                (event,) = session.exec(select(Event).where(Event.event == "WhatsApp Message Received")).all()
                assert (
                    event.profile_id == ids["ann"] and event.properties["text"] == "Is my order on its way?"
                )

                reply = _whatsapp(session, "Reply", {"kind": "text", "text": "Yes, {{ traits.first_name }}!"})
                run_due_jobs(TENANT, database)
                assert _states(session, reply, ids) == {
                    "ann": (DeliveryState.sent, None), "bob": (DeliveryState.suppressed, "outside_window")
                }  # fmt: skip

                card = _whatsapp(session, "Card", {"kind": "template", "template_name": "card_ready",
                                                   "body_parameters": "{{ traits.first_name }}",
                                                   "button_parameters": "url:{{ wallet.club_card }}"})  # fmt: skip
                run_due_jobs(TENANT, database)
                # Ann was written to a moment ago: Meta's pair limit defers her card by a few seconds.
                assert _states(session, card, ids) == {
                    "ann": (DeliveryState.queued, "pair_rate_limited"), "bob": (DeliveryState.sent, None)
                }  # fmt: skip
                time.sleep(PAIR_SECONDS)
                make_due(session)
                run_due_jobs(TENANT, database)
                assert _states(session, card, ids)["ann"] == (DeliveryState.sent, None)
                sent = [s["body"] for s in fake.sent if s["body"].get("type") == "template"]
                button = next(c for c in sent[0]["template"]["components"] if c["type"] == "button")
                suffix = button["parameters"][0]["text"]
                assert suffix.startswith("w/") and not suffix.startswith(
                    "http"
                )  # Meta adds the approved base

                paused = _whatsapp(session, "Paused", {"kind": "template", "template_name": "spring_sale",
                                                       "body_parameters": "x"})  # fmt: skip
                run_due_jobs(TENANT, database)
                rows = session.exec(select(Delivery).where(Delivery.campaign_id == paused)).all()
                assert {(r.state, r.reason) for r in rows} == {(DeliveryState.failed, "invalid_for_channel")}
                assert all("PAUSED" in (r.detail or "") for r in rows)

                wamid = session.exec(select(Delivery).where(Delivery.campaign_id == card)).first()
                assert wamid is not None and wamid.provider_id
                read = fake.status_payload(wamid.provider_id, "read", ann)
                for _ in range(3):  # Meta retries notifications it thinks were not received
                    assert notify(read) == 200
                assert report(session, campaign_id=card).opened == 1

                assert notify(fake.inbound_payload(ann, "Stop")) == 200
                assert notify({**fake.inbound_payload(bob, "stop the sale emails please")}) == 200
                process_events(TENANT, {})
                session.expire_all()
                consents = {
                    user: {(c.channel, c.purpose): c.granted for c in current(session, pid)}
                    for user, pid in ids.items()
                }
                assert consents["ann"][(CHANNEL, "marketing")] is False
                assert consents["bob"][(CHANNEL, "marketing")] is True  # a sentence, not the word alone

                login(client, f"admin@{TENANT}.test")  # marketers see the synced templates in settings
                settings = client.get(f"/t/{TENANT}/settings").text
                assert "card_ready" in settings and "Hi {{1}}, your club card is ready." in settings
                assert "spring_sale" in settings and "PAUSED" in settings
    assert json.dumps(fake.sent)  # what Meta received is plain JSON
