"""The campaigns API as a script uses it: create, confirm, launch, report; bad input answered clearly."""

from __future__ import annotations

from sqlmodel import select

from core.audit.models import AuditEntry
from core.db.engines import control_session
from core.delivery.models import Delivery
from tests.delivery.conftest import CHANNEL, content
from tests.fakes.provider import sign_webhook, webhook_body
from tests.support import bearer


def test_a_campaign_is_created_confirmed_launched_and_reported(shop) -> None:
    shop.customers(4)
    shop.provider.reject("c3@example.com")
    segment = shop.segment()
    auth = bearer(shop.token)
    with shop.installation.client() as client:
        created = client.post("/api/v1/campaigns", headers=auth, json={
            "name": "Winter sale", "segment_id": segment, "channel": CHANNEL, "content": content()})  # fmt: skip
        assert created.status_code == 201, created.text
        campaign = created.json()
        assert campaign["status"] == "draft"
        confirmation = client.get(f"/api/v1/campaigns/{campaign['id']}/confirmation", headers=auth).json()
        assert confirmation["targeted"] == 4 and confirmation["reach"] == 4 and confirmation["missing"] == {}
        launched = client.post(f"/api/v1/campaigns/{campaign['id']}/launch", headers=auth)
        assert launched.status_code == 202 and launched.json()["status"] == "launching"
        shop.run_jobs()
        report = client.get(f"/api/v1/campaigns/{campaign['id']}/report", headers=auth).json()
        assert {k: report[k] for k in ("targeted", "sent", "failed", "suppressed", "delivered")} == {
            "targeted": 4, "sent": 3, "failed": {"invalid_recipient": 1}, "suppressed": {}, "delivered": 0}  # fmt: skip
        assert report["status"] == "completed"
        for key in ("opened", "clicked", "installed", "removed", "converted"):
            assert report[key] == 0
        again = client.post(f"/api/v1/campaigns/{campaign['id']}/launch", headers=auth)
        assert again.status_code == 409
        csv_text = client.get(f"/api/v1/campaigns/{campaign['id']}/report.csv", headers=auth).text
        assert (
            csv_text.splitlines()[0].startswith("day,sent,delivered") and ",3," in csv_text.splitlines()[-1]
        )
        listed = client.get("/api/v1/campaigns", headers=auth).json()["campaigns"]
        assert [c["name"] for c in listed] == ["Winter sale"]
    with control_session() as control:
        actions = [
            e.action for e in control.exec(select(AuditEntry).where(AuditEntry.action.like("campaign.%")))
        ]
    assert actions == ["campaign.create", "campaign.launch"]


def test_invalid_content_and_unknown_things_get_clear_answers(shop) -> None:
    segment = shop.segment()
    auth = bearer(shop.token)
    with shop.installation.client() as client:
        broken = client.post("/api/v1/campaigns", headers=auth, json={
            "name": "Broken", "segment_id": segment, "channel": CHANNEL,
            "content": content("{% if traits.vip %}VIP")})  # fmt: skip
        assert broken.status_code == 422
        (problem,) = broken.json()["problems"]
        assert problem["language"] == "en" and problem["field"] == "body" and "endif" in problem["message"]
        unknown_channel = client.post("/api/v1/campaigns", headers=auth, json={
            "name": "Nowhere", "segment_id": segment, "channel": "pigeon", "content": content()})  # fmt: skip
        assert unknown_channel.status_code == 422 and "pigeon" in unknown_channel.json()["detail"]
        assert client.get("/api/v1/campaigns/999", headers=auth).status_code == 404
        wrong_type = client.post("/api/v1/campaigns", headers=auth, json={"name": 3})
        assert wrong_type.status_code == 422
        assert client.get("/api/v1/campaigns").status_code == 401


def test_provider_webhooks_update_the_deliveries(shop) -> None:
    shop.customers(1)
    from core.plugins import get_host
    from core.tenancy.plugin_settings import save_channel_config
    from core.tenancy.tenants import get_tenant

    with control_session() as control:
        save_channel_config(control, get_tenant(control, "shop"), get_host(), CHANNEL,
                            {"endpoint": shop.provider.url, "api_key": "test-key", "webhook_secret": "s3cret"})  # fmt: skip
        control.commit()
    segment = shop.segment()
    auth = bearer(shop.token)
    with shop.installation.client() as client:
        campaign = client.post("/api/v1/campaigns", headers=auth, json={
            "name": "Hooked", "segment_id": segment, "channel": CHANNEL, "content": content()}).json()  # fmt: skip
        client.post(f"/api/v1/campaigns/{campaign['id']}/launch", headers=auth)
        shop.run_jobs()
        (row,) = shop.session.exec(select(Delivery)).all()
        body = webhook_body({"id": row.provider_id, "status": "delivered", "at": "2026-11-30T10:00:00+00:00"},
                            {"id": row.provider_id, "status": "read", "at": "2026-11-30T10:05:00+00:00"})  # fmt: skip
        forged = client.post(f"/webhooks/shop/{CHANNEL}", content=body,
                             headers={"X-Recording-Signature": "sha256=00"})  # fmt: skip
        assert forged.status_code == 401
        answered = client.post(f"/webhooks/shop/{CHANNEL}", content=body,
                               headers={"X-Recording-Signature": sign_webhook(body, "s3cret")})  # fmt: skip
        assert answered.status_code == 200
        report = client.get(f"/api/v1/campaigns/{campaign['id']}/report", headers=auth).json()
        assert (report["delivered"], report["opened"]) == (1, 1)
        assert report["over_time"]["2026-11-30"]["opened"] == 1
