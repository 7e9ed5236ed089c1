"""The passes API: templates listed, a profile's pass issued and re-issued with its links, its
passes listed, revoked; and every bad request answered with what is wrong."""

from __future__ import annotations

from core.db.engines import control_session
from core.plugins import get_host
from core.tenancy.plugin_settings import set_enabled
from core.tenancy.tenants import get_tenant
from tests.passes.shop import CARD, CHANNEL, TENANT, Shop
from tests.support import bearer


def test_templates_are_listed_and_a_pass_issued_then_reissued(shop: Shop) -> None:
    auth = bearer(shop.token)
    ann = shop.customer("ann")
    with shop.installation.client() as client:
        [card] = client.get("/api/v1/pass-templates", headers=auth).json()
        assert (card["key"], card["channel"], card["style"], card["languages"]) == (
            "club_card", CHANNEL, "storeCard", ["en", "fr"]
        )  # fmt: skip
        issued = client.post(
            "/api/v1/passes", headers=auth, json={"template_id": card["id"], "profile_id": ann}
        )
        assert issued.status_code == 201, issued.text
        body = issued.json()
        assert body["channel"] == CHANNEL and body["state"] == "active" and len(body["serial"]) >= 16
        assert body["download_url"].startswith("http") and f"/w/{TENANT}/" in body["download_url"]
        again = client.post(
            "/api/v1/passes", headers=auth, json={"template_id": card["id"], "profile_id": ann}
        )
        assert again.status_code == 200 and again.json()["serial"] == body["serial"]
        listed = client.get(f"/api/v1/profiles/{ann}/passes", headers=auth).json()
        assert [p["serial"] for p in listed] == [body["serial"]]
        assert client.get("/api/v1/pass-templates", headers=auth).json()[0]["issued"] == 1


def test_revoking_voids_the_pass(shop: Shop) -> None:
    auth = bearer(shop.token)
    ann = shop.customer("ann")
    with shop.installation.client() as client:
        serial = client.post("/api/v1/passes", headers=auth,
                             json={"template_id": shop.template.id, "profile_id": ann}).json()["serial"]  # fmt: skip
        voided = client.post(f"/api/v1/passes/{serial}/void", headers=auth, json={"reason": "card lost"})
        assert voided.status_code == 200 and voided.json()["state"] == "voided"
        kinds = [a["kind"] for a in client.get(f"/api/v1/passes/{serial}", headers=auth).json()["activity"]]
        assert kinds[0] == "voided"


def test_bad_requests_say_what_is_wrong(shop: Shop) -> None:
    auth = bearer(shop.token)
    ann = shop.customer("ann")
    nameless = shop.customer("nameless", first_name=None)
    with shop.installation.client() as client:
        post = client.post
        assert (
            post("/api/v1/passes", headers=auth, json={"template_id": 999, "profile_id": ann}).status_code
            == 404
        )
        unknown = post(
            "/api/v1/passes", headers=auth, json={"template_id": shop.template.id, "profile_id": "nope"}
        )
        assert unknown.status_code == 404
        wrong = post("/api/v1/passes", headers=auth, json={"template_id": "x", "profile_id": ann, "extra": 1})
        assert wrong.status_code == 422
        missing = post(
            "/api/v1/passes", headers=auth, json={"template_id": shop.template.id, "profile_id": nameless}
        )
        assert missing.status_code == 422
        assert missing.json()["problems"] == [
            {"field": "field.name.value", "message": "traits.first_name has no value for this profile"}
        ]
        assert (
            post("/api/v1/passes", json={"template_id": shop.template.id, "profile_id": ann}).status_code
            == 401
        )
        bad_design = post("/api/v1/pass-templates", headers=auth, json={
            "key": "bad", "name": "Bad", "channel": CHANNEL, "design": {**CARD, "background_color": "blue"}})  # fmt: skip
        assert bad_design.status_code == 422
        assert bad_design.json()["problems"][0]["field"] == "background_color"
        unknown_var = post("/api/v1/pass-templates", headers=auth, json={
            "key": "bad2", "name": "Bad", "channel": CHANNEL,
            "design": {**CARD, "description": "{{ first_name }}"}})  # fmt: skip
        assert unknown_var.status_code == 422 and "unknown variable(s) first_name" in unknown_var.text
        with control_session() as control:
            set_enabled(control, get_tenant(control, TENANT), get_host(), CHANNEL, False)
            control.commit()
        off = post("/api/v1/passes", headers=auth, json={"template_id": shop.template.id, "profile_id": ann})
        assert off.status_code == 409 and "not enabled" in off.json()["detail"]
