"""Google Wallet passes end to end, against the plugin's fake Google served on a local port.

The shop's loyalty card issued on Google Wallet: the class and object reach Google through the
REST API (validated by the fake against the official schema), the save link is a JWT signed by
the service account carrying valid objects, a purchase patches the object and adds a notifying
message, revocation sets its state, and Google's signed save and delete callbacks become installs
and removals (a forged or replayed callback changes nothing).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select
from tessera_wallet_google.objects import PAYLOAD_KEYS, class_id
from tessera_wallet_google.sandbox import create_sandbox_app
from tessera_wallet_google.schema import schema_problems
from tessera_wallet_google.testkeys import service_account_public_key_pem, test_service_account, test_signer

from core.db.engines import control_session
from core.internal_events.models import InternalEvent
from core.passes import library
from core.passes.marking import mark_changed_now
from core.passes.models import PassTemplate
from core.plugins import get_host
from core.tenancy.plugin_settings import save_channel_config, set_enabled
from core.tenancy.tenants import get_tenant
from tests.fakes.provider import serving_app
from tests.passes.shop import CARD, TENANT, Shop, open_shop
from tests.support import bearer

GOOGLE = "wallet_google"
ISSUER = "3388000000012345"


@pytest.fixture
def google() -> Iterator[tuple[str, httpx.Client]]:
    """The fake Google, served; its base URL and a client for its control endpoints."""
    with serving_app(create_sandbox_app()) as url, httpx.Client(base_url=url) as client:
        yield url, client


def configure_google(api_url: str, **extra: Any) -> None:
    """Enable Google Wallet for the shop, pointed at the fake through the private-gateway setting."""
    config = {"issuer_id": ISSUER, "service_account_json": json.dumps(test_service_account()),
              "origins": ["https://shop.example"], "api_url": api_url, **extra}  # fmt: skip
    with control_session() as control:
        tenant = get_tenant(control, TENANT)
        set_enabled(control, tenant, get_host(), GOOGLE, True, sandbox=False)
        save_channel_config(control, tenant, get_host(), GOOGLE, config)
        control.commit()


@pytest.fixture
def google_shop(
    installation: Any, google: tuple[str, httpx.Client]
) -> Iterator[tuple[Shop, PassTemplate, httpx.Client]]:
    """The shop (both backends) whose loyalty card is issued in Google Wallet too: one template, two wallets."""
    url, fake = google
    for shop in open_shop(installation):
        configure_google(url)
        translations = {**CARD["translations"], "de": {"field.points.label": "Punkte"}}
        card = library.save_template(shop.session, key=shop.template.key, name=shop.template.name,
                                     channel=shop.template.channel, design={**shop.template.design,
                                     "translations": translations}, by="test", template=shop.template,
                                     other_channels=[GOOGLE])  # fmt: skip
        shop.session.commit()
        yield shop, card, fake


def issue_by_api(client: TestClient, shop: Shop, template: PassTemplate, profile_id: str) -> httpx.Response:
    """Issue the profile's Google Wallet pass of the template through the API."""
    body = {"template_id": template.id, "profile_id": profile_id, "channel": GOOGLE}
    return client.post("/api/v1/passes", json=body, headers=bearer(shop.token))


def fake_state(fake: httpx.Client) -> dict[str, Any]:
    state: dict[str, Any] = fake.get("/_sandbox/state").json()
    return state


def test_issuing_puts_a_valid_class_and_object_at_google_and_answers_a_save_url(google_shop) -> None:
    shop, card, fake = google_shop
    ann = shop.customer("ann")
    shop.give(ann, 10)
    with shop.installation.client() as client:
        answer = issue_by_api(client, shop, card, ann)
        assert answer.status_code == 201, answer.text
        issued = answer.json()
        assert issued["channel"] == GOOGLE and issued["serial"].startswith(ISSUER + ".")
        assert issued["save_url"] == issued["download_url"]

        state = fake_state(fake)
        google_object = state["objects"][issued["serial"]]
        assert google_object["state"] == "ACTIVE"
        assert google_object["loyaltyPoints"]["balance"] == {"int": 10}
        assert schema_problems("LoyaltyObject", google_object) == []
        (google_class,) = state["classes"].values()
        assert google_class["id"] == google_object["classId"] and google_class["issuerName"] == "Tessera Shop"
        assert google_class["callbackOptions"]["url"].endswith(f"/webhooks/{TENANT}/{GOOGLE}")

        again = issue_by_api(client, shop, card, ann)  # idempotent: the same pass, nothing new at Google
        assert again.status_code == 200 and again.json()["serial"] == issued["serial"]
        assert len(fake_state(fake)["objects"]) == 1


def test_the_save_link_is_a_jwt_signed_by_the_service_account_carrying_valid_objects(google_shop) -> None:
    shop, card, fake = google_shop
    ann = shop.customer("ann")
    with shop.installation.client() as client:
        issued = issue_by_api(client, shop, card, ann).json()
        answer = client.get(issued["save_url"], follow_redirects=False)
    assert answer.status_code == 303
    location = answer.headers["location"]
    token = location.rsplit("/gp/v/save/", 1)[1]
    claims = jwt.decode(token, service_account_public_key_pem(), algorithms=["RS256"], audience="google")
    assert claims["iss"] == test_service_account()["client_email"]
    assert claims["typ"] == "savetowallet" and claims["origins"] == ["https://shop.example"]
    assert jwt.get_unverified_header(token)["kid"] == test_service_account()["private_key_id"]
    classes, objects = PAYLOAD_KEYS["loyalty"]
    (sent,) = claims["payload"][objects]
    assert sent["id"] == issued["serial"] and schema_problems("Resources", claims["payload"]) == []
    languages = {t["language"] for t in sent["loyaltyPoints"]["localizedLabel"]["translatedValues"]}
    assert languages == {"fr", "de"}
    with pytest.raises(jwt.InvalidSignatureError):  # signed by that account's key, not by any other
        jwt.decode(token, _rsa_public_key_not_the_accounts(), algorithms=["RS256"], audience="google")
    saved = fake.get(location.removeprefix(str(fake.base_url)))  # a tap on Google's save page
    assert saved.status_code == 200, saved.text


def _rsa_public_key_not_the_accounts() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()


def test_a_points_change_patches_the_object_and_notifies_once(google_shop) -> None:
    shop, card, fake = google_shop
    ann = shop.customer("ann")
    with shop.installation.client() as client:
        serial = issue_by_api(client, shop, card, ann).json()["serial"]
    shop.give(ann, 15)
    mark_changed_now(TENANT, {ann})
    shop.run_jobs()
    state = fake_state(fake)
    assert state["objects"][serial]["loyaltyPoints"]["balance"] == {"int": 15}
    texts = [m["body"] for m in state["objects"][serial].get("messages", [])]
    assert "You now have 15 points" in texts
    assert shop.activity(serial).count("notified") == 1 and "pushed" in shop.activity(serial)
    shop.run_jobs()  # nothing changed: nothing more is sent
    assert shop.activity(serial).count("pushed") == 2  # issued, then the change


def test_revoking_sets_the_object_inactive_at_google(google_shop) -> None:
    shop, card, fake = google_shop
    ann = shop.customer("ann")
    with shop.installation.client() as client:
        serial = issue_by_api(client, shop, card, ann).json()["serial"]
        voided = client.post(
            f"/api/v1/passes/{serial}/void", json={"reason": "fraud"}, headers=bearer(shop.token)
        )
    assert voided.status_code == 200, voided.text
    assert fake_state(fake)["objects"][serial]["state"] == "INACTIVE"


def callback(serial: str, event: str, **signing: Any) -> bytes:
    return test_signer().sign(ISSUER, class_id(ISSUER, TENANT, "club_card"), serial, event, **signing)


def test_signed_save_and_delete_callbacks_become_installs_and_removals_once(google_shop) -> None:
    shop, card, _ = google_shop
    ann = shop.customer("ann")
    with shop.installation.client() as client:
        serial = issue_by_api(client, shop, card, ann).json()["serial"]
        save = callback(serial, "save", nonce="n-1")
        assert client.post(f"/webhooks/{TENANT}/{GOOGLE}", content=save).status_code == 200
        assert client.post(f"/webhooks/{TENANT}/{GOOGLE}", content=save).status_code == 200  # replayed
        assert shop.activity(serial).count("installed") == 1
        gone = client.post(f"/webhooks/{TENANT}/{GOOGLE}", content=callback(serial, "del", nonce="n-2"))
        assert gone.status_code == 200
    assert shop.activity(serial).count("removed") == 1
    names = shop.session.exec(select(InternalEvent.name).where(InternalEvent.profile_id == ann)).all()
    assert {"Pass Installed", "Pass Removed"} <= set(names)


def test_a_callback_with_a_bad_signature_is_refused_and_changes_nothing(google_shop) -> None:
    shop, card, _ = google_shop
    ann = shop.customer("ann")
    with shop.installation.client() as client:
        serial = issue_by_api(client, shop, card, ann).json()["serial"]
        body = json.loads(callback(serial, "save"))
        body["signedMessage"] = body["signedMessage"].replace('"save"', '"del"')
        refused = client.post(f"/webhooks/{TENANT}/{GOOGLE}", content=json.dumps(body).encode())
        assert refused.status_code == 400 and "refused" in refused.text.lower()
        expired = client.post(
            f"/webhooks/{TENANT}/{GOOGLE}", content=callback(serial, "save", exp_time_millis=1000)
        )
        assert expired.status_code == 400
    assert "installed" not in shop.activity(serial) and "removed" not in shop.activity(serial)


def test_google_errors_are_recorded_with_clear_reasons_and_lose_nothing(google_shop) -> None:
    shop, card, fake = google_shop
    ann = shop.customer("ann")
    fake.post("/_sandbox/fail", json={"status": 503, "times": 10})
    with shop.installation.client() as client:
        answer = issue_by_api(client, shop, card, ann)
        assert answer.status_code == 201  # issued here; Google gets it on the next change
        serial = answer.json()["serial"]
        detail = client.get(f"/api/v1/passes/{serial}", headers=bearer(shop.token)).json()
    failed = [a["detail"] for a in detail["activity"] if a["kind"] == "failed"]
    assert failed and "unavailable" in failed[0]["publish"]
    fake.post("/_sandbox/reset")
    shop.give(ann, 5)
    mark_changed_now(TENANT, {ann})
    shop.run_jobs()  # the next change puts the whole pass at Google
    assert fake_state(fake)["objects"][serial]["loyaltyPoints"]["balance"] == {"int": 5}


def test_credentials_google_refuses_are_said_plainly(
    installation: Any, google: tuple[str, httpx.Client]
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    url, _ = google
    for shop in open_shop(installation):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()  # fmt: skip
        stranger = {**test_service_account(), "private_key": pem}
        configure_google(url, service_account_json=json.dumps(stranger))
        card = library.save_template(shop.session, key="club_google", name="Google card", channel=GOOGLE,
                                     design=shop.template.design, by="test")  # fmt: skip
        shop.session.commit()
        ann = shop.customer("ann")
        with shop.installation.client() as client:
            serial = issue_by_api(client, shop, card, ann).json()["serial"]
            detail = client.get(f"/api/v1/passes/{serial}", headers=bearer(shop.token)).json()
        (failed,) = [a["detail"] for a in detail["activity"] if a["kind"] == "failed"]
        assert failed["publish"].startswith("credentials_refused")


def test_a_card_google_would_refuse_is_not_issued(google_shop) -> None:
    shop, _, _ = google_shop
    bare = {**shop.template.design, "images": {}}
    card = library.save_template(
        shop.session, key="bare_google", name="No logo", channel=GOOGLE, design=bare, by="t"
    )
    shop.session.commit()
    ann = shop.customer("ann")
    with shop.installation.client() as client:
        answer = issue_by_api(client, shop, card, ann)
    assert answer.status_code == 422
    assert any("logo" in p["message"].lower() for p in answer.json()["problems"])


ANDROID = "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 Chrome/130.0 Mobile Safari/537.36"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


def test_one_template_serves_both_wallets_from_one_link(google_shop) -> None:
    shop, card, fake = google_shop
    ann = shop.customer("ann")
    with shop.installation.client() as client:
        google = issue_by_api(client, shop, card, ann).json()
        apple = client.post("/api/v1/passes", json={"template_id": card.id, "profile_id": ann},
                            headers=bearer(shop.token)).json()  # fmt: skip
        assert (apple["channel"], google["channel"]) == ("wallet_apple", GOOGLE)
        assert apple["serial"] != google["serial"] and apple["landing_url"] == google["landing_url"]
        page = urlsplit(google["landing_url"]).path
        on_android = client.get(page, headers={"User-Agent": ANDROID})
        buttons = re.findall(r'href="[^"]*/pass\?wallet=(\w+)"', on_android.text)
        assert buttons == [GOOGLE, "wallet_apple"]  # the phone's own wallet first
        saved = client.get(page + "/pass", headers={"User-Agent": ANDROID}, follow_redirects=False)
        assert saved.status_code == 303 and "/gp/v/save/" in saved.headers["location"]
        downloaded = client.get(page + "/pass", headers={"User-Agent": IPHONE})
        assert downloaded.headers["content-type"] == "application/vnd.apple.pkpass"
    listed = {t["key"]: t for t in client.get("/api/v1/pass-templates", headers=bearer(shop.token)).json()}
    assert listed["club_card"]["channels"] == ["wallet_apple", GOOGLE]
    assert google["serial"] in fake_state(fake)["objects"]


def test_a_templates_google_settings_are_checked_by_google_wallet(google_shop) -> None:
    shop, card, fake = google_shop
    design = {**card.design, "wallet_settings": {GOOGLE: {"kind": "boat"}}}
    body = {
        "key": "gift",
        "name": "Gift card",
        "channel": "wallet_apple",
        "other_channels": [GOOGLE],
        "design": design,
    }
    with shop.installation.client() as client:
        refused = client.post("/api/v1/pass-templates", json=body, headers=bearer(shop.token))
        assert refused.status_code == 422
        assert refused.json()["problems"][0]["field"] == f"wallet_settings.{GOOGLE}.kind"
        body["design"] = {**card.design, "wallet_settings": {GOOGLE: {"kind": "giftCard", "currency": "EUR"}}}
        made = client.post("/api/v1/pass-templates", json=body, headers=bearer(shop.token))
        assert made.status_code == 201, made.text
        ann = shop.customer("ann")
        issued = client.post("/api/v1/passes", json={"template_id": made.json()["id"], "profile_id": ann,
                                                     "channel": GOOGLE}, headers=bearer(shop.token))  # fmt: skip
    assert issued.status_code == 201, issued.text
    gift = fake_state(fake)["objects"][issued.json()["serial"]]
    assert "cardNumber" in gift and "loyaltyPoints" not in gift  # a gift card, as the setting asked
