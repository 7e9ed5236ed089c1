"""A push campaign end to end through the FCM plugin, against its fake FCM served on a port (the
config's private-gateway ``api_url``): every device of each customer gets the push, a token FCM
calls gone is retired and never used again, and an open reported by the app is counted once."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlmodel import Session, select
from tessera_push_fcm.sandbox import create_sandbox_app
from tessera_push_fcm.testkeys import PROJECT_ID, test_service_account

from core.db.engines import control_session, tenant_engine
from core.delivery.models import Delivery, DeliveryState
from core.ingest.service import accept
from core.plugins import get_host
from core.profiles.jobs import process_events
from core.profiles.models import Identity
from core.profiles.service import find_by_identifier
from core.reporting.report import report
from core.tenancy.plugin_settings import save_channel_config, set_enabled
from core.tenancy.tenants import get_tenant
from tests.fakes.provider import serving_app
from tests.support import launch_to_consenting, run_due_jobs

TENANT = "app"
CHANNEL = "push_fcm"
PUSH = {"variants": {"en": {"title": "Hi {{ traits.first_name }}", "body": "The sale is on."},
                     "fr": {"title": "Salut {{ traits.first_name }}", "body": "Les soldes commencent."}},
        "fallback": "en"}  # fmt: skip


def _customer(user: str, locale: str, *tokens: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    events = [{"type": "identify", "userId": user, "timestamp": now,
               "traits": {"first_name": user.title(), "locale": locale, "consent": {CHANNEL: True}}}]  # fmt: skip
    events += [{"type": "screen", "userId": user, "name": "Home", "timestamp": now,
                "context": {"device": {"token": token}}} for token in tokens]  # fmt: skip
    return events


def test_a_push_campaign_reaches_every_device_retires_gone_tokens_and_counts_opens(installation) -> None:
    database = installation.tenant(TENANT).tenant.database
    fake = create_sandbox_app()
    with serving_app(fake) as url:
        with control_session() as control:
            tenant = get_tenant(control, TENANT)
            set_enabled(control, tenant, get_host(), CHANNEL, True, sandbox=False)
            config = {"project_id": PROJECT_ID, "service_account_json": json.dumps(test_service_account()),
                      "api_url": url}  # fmt: skip
            save_channel_config(control, tenant, get_host(), CHANNEL, config)
            control.commit()
        fake.state.fcm.unregistered.add("ann-old-phone")
        with Session(tenant_engine(database), expire_on_commit=False) as session:
            events = _customer("ann", "en", "ann-phone-1", "ann-old-phone") + _customer(
                "zoe", "fr", "zoe-tablet"
            )
            assert not accept(session, TENANT, events).rejected
            process_events(TENANT, {})
            ann = find_by_identifier(session, "user_id", "ann").id

            first = launch_to_consenting(session, TENANT, CHANNEL, "Sale", PUSH)
            run_due_jobs(TENANT, database)
            sent = fake.state.fcm.snapshot()["sent"]
            by_token = {m["message"]["token"]: m["message"] for m in sent}
            assert set(by_token) == {"ann-phone-1", "zoe-tablet"}
            assert by_token["zoe-tablet"]["notification"]["title"] == "Salut Zoe"  # her language
            rows = session.exec(select(Delivery).where(Delivery.campaign_id == first)).all()
            assert {r.state for r in rows} == {DeliveryState.sent}
            gone = session.exec(select(Identity).where(Identity.value == "ann-old-phone")).one()
            assert gone.retired_at is not None and gone.profile_id == ann

            opened = by_token["ann-phone-1"]["data"]["tessera_open_url"]
            with installation.client() as client:
                assert client.post(urlsplit(opened).path).status_code == 204
                assert client.post(urlsplit(opened).path).status_code == 204
            assert report(session, campaign_id=first).opened == 1

            launch_to_consenting(session, TENANT, CHANNEL, "Sale, again", PUSH)
            run_due_jobs(TENANT, database)
            tokens = [m["message"]["token"] for m in fake.state.fcm.snapshot()["sent"]]
            assert tokens.count("ann-old-phone") == 0 and tokens.count("ann-phone-1") == 2
