"""The PassKit web service, endpoint by endpoint, as an iPhone calls it: good and bad tokens,
unknown serials and pass types, malformed bodies, serials changed since a tag, and 304."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from fastapi.testclient import TestClient
from sqlmodel import select
from tessera_wallet_apple.testchain import chain

from core.passes.models import DeviceLog
from tests.passes.shop import TENANT, Shop
from tests.support import bearer

DEVICE = "a1b2c3d4e5f6device"
PUSH_TOKEN = "ab" * 32


def _issued(shop: Shop, client: TestClient, user: str = "ann") -> dict[str, str]:
    profile = shop.customer(user)
    answer = client.post("/api/v1/passes", headers=bearer(shop.token),
                         json={"template_id": shop.template.id, "profile_id": profile})  # fmt: skip
    assert answer.status_code == 201, answer.text
    held = shop.pass_of(profile)
    assert held is not None
    return {"serial": held.serial, "token": held.authentication_token, "profile": profile}


def _base() -> str:
    return f"/x/{TENANT}/wallet_apple/v1"


def _registration(serial: str) -> str:
    return f"{_base()}/devices/{DEVICE}/registrations/{chain().pass_type_identifier}/{serial}"


def test_a_device_registers_lists_updates_fetches_and_unregisters(shop: Shop) -> None:
    with shop.installation.client() as client:
        card = _issued(shop, client)
        apple = {"Authorization": f"ApplePass {card['token']}"}
        url = _registration(card["serial"])
        created = client.post(url, headers=apple, json={"pushToken": PUSH_TOKEN})
        assert created.status_code == 201
        assert client.post(url, headers=apple, json={"pushToken": PUSH_TOKEN}).status_code == 200
        assert len(shop.registrations()) == 1
        assert shop.activity(card["serial"]) == ["issued", "installed"]

        listing = f"{_base()}/devices/{DEVICE}/registrations/{chain().pass_type_identifier}"
        first = client.get(listing)
        assert first.status_code == 200 and first.json()["serialNumbers"] == [card["serial"]]
        tag = first.json()["lastUpdated"]
        assert client.get(listing, params={"passesUpdatedSince": tag}).status_code == 204

        latest = client.get(
            f"{_base()}/passes/{chain().pass_type_identifier}/{card['serial']}", headers=apple
        )
        assert latest.status_code == 200 and latest.headers["content-type"] == "application/vnd.apple.pkpass"
        with zipfile.ZipFile(io.BytesIO(latest.content)) as pkpass:
            shown = json.loads(pkpass.read("pass.json"))
        assert shown["serialNumber"] == card["serial"] and shown["authenticationToken"] == card["token"]
        assert shown["webServiceURL"].endswith(f"/x/{TENANT}/wallet_apple")
        modified = latest.headers["last-modified"]
        fresh = client.get(latest.url, headers={**apple, "If-Modified-Since": modified})
        assert fresh.status_code == 304 and fresh.content == b""
        older = format_datetime(datetime.now(UTC) - timedelta(days=1), usegmt=True)
        assert client.get(latest.url, headers={**apple, "If-Modified-Since": older}).status_code == 200

        assert client.delete(url, headers=apple).status_code == 200
        assert len(shop.registrations()) == 0
        assert shop.activity(card["serial"])[-1] == "removed"
        assert client.get(listing).status_code == 204


def test_bad_tokens_unknown_serials_and_pass_types_are_refused(shop: Shop) -> None:
    with shop.installation.client() as client:
        card = _issued(shop, client)
        url = _registration(card["serial"])
        body = {"pushToken": PUSH_TOKEN}
        assert client.post(url, json=body).status_code == 401  # no token
        assert (
            client.post(
                url, headers={"Authorization": "ApplePass wrong-token-1234567"}, json=body
            ).status_code
            == 401
        )
        assert (
            client.post(url, headers={"Authorization": f"Bearer {card['token']}"}, json=body).status_code
            == 401
        )
        apple = {"Authorization": f"ApplePass {card['token']}"}
        unknown = _registration("NOSUCHSERIAL")
        assert client.post(unknown, headers=apple, json=body).status_code == 401
        other_type = url.replace(chain().pass_type_identifier, "pass.com.other.card")
        assert client.post(other_type, headers=apple, json=body).status_code == 404
        passes = f"{_base()}/passes/{chain().pass_type_identifier}"
        assert client.get(f"{passes}/{card['serial']}").status_code == 401
        assert (
            client.get(f"{passes}/{card['serial']}", headers={"Authorization": "ApplePass x" * 3}).status_code
            == 401
        )
        assert client.get(f"{passes}/NOSUCHSERIAL", headers=apple).status_code == 401
        assert (
            client.delete(url, headers={"Authorization": "ApplePass nope-nope-nope-nope"}).status_code == 401
        )
        assert len(shop.registrations()) == 0


def test_malformed_bodies_get_400_and_register_nothing(shop: Shop) -> None:
    with shop.installation.client() as client:
        card = _issued(shop, client)
        url = _registration(card["serial"])
        apple = {"Authorization": f"ApplePass {card['token']}", "Content-Type": "application/json"}
        for body in (b"{not json", b"[]", b'{"pushToken": 12}', b'{"pushToken": ""}', b"\xff\xfe"):
            answer = client.post(url, headers=apple, content=body)
            assert answer.status_code == 400, body
        assert client.post(f"{_base()}/log", json={"logs": "not a list"}).status_code == 400
        assert len(shop.registrations()) == 0


def test_the_log_endpoint_keeps_device_messages(shop: Shop) -> None:
    with shop.installation.client() as client:
        answer = client.post(f"{_base()}/log", json={"logs": ["Pass update failed: 401", "second"]})
        assert answer.status_code == 200
    assert sorted(shop.session.exec(select(DeviceLog.message))) == ["Pass update failed: 401", "second"]


def test_the_web_service_is_not_there_for_a_tenant_without_the_plugin(shop: Shop) -> None:
    shop.installation.tenant("other")
    with shop.installation.client() as client:
        answer = client.post("/x/other/wallet_apple/v1/log", json={"logs": []})
        assert answer.status_code == 404
