"""The fake Graph API: auth, error envelope, templates list, window and control endpoints."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from tessera_whatsapp.channel import WhatsAppChannel
from tessera_whatsapp.sandbox import SANDBOX_TOKEN, SANDBOX_WABA_ID, FakeWhatsApp

SEND = "/v23.0/106540352242922/messages"
AUTH = {"Authorization": f"Bearer {SANDBOX_TOKEN}"}
TEXT = {"messaging_product": "whatsapp", "to": "16505551234", "type": "text", "text": {"body": "Hi"}}


def client(fake: FakeWhatsApp | None = None) -> TestClient:
    """A test client on a fake (by default the channel's own sandbox app)."""
    return TestClient(fake.app if fake else WhatsAppChannel().sandbox_app())


def test_without_or_with_a_bad_bearer_token_answers_meta_401() -> None:
    """Meta's OAuthException, code 190, with an fbtrace_id."""
    for headers in [{}, {"Authorization": "Bearer nope"}]:
        response = client().post(SEND, json=TEXT, headers=headers)
        assert response.status_code == 401
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("OAuthException", 190) and error["fbtrace_id"]


def test_unknown_number_and_missing_fields() -> None:
    """Unknown phone number id: code 100; missing to: 131008; not whatsapp: 100."""
    assert client().post("/v23.0/999/messages", json=TEXT, headers=AUTH).json()["error"]["code"] == 100
    missing_to = {k: v for k, v in TEXT.items() if k != "to"}
    assert client().post(SEND, json=missing_to, headers=AUTH).json()["error"]["code"] == 131008
    other = {**TEXT, "messaging_product": "sms"}
    assert client().post(SEND, json=other, headers=AUTH).json()["error"]["code"] == 100


def test_templates_are_listed_with_their_status() -> None:
    """GET /{version}/{waba_id}/message_templates lists name, language and status."""
    response = client().get(f"/v23.0/{SANDBOX_WABA_ID}/message_templates", headers=AUTH)
    names = {(t["name"], t["status"]) for t in response.json()["data"]}
    assert ("hello_world", "APPROVED") in names and ("spring_sale", "PAUSED") in names


def test_window_is_opened_by_an_inbound_message_and_closes_after_24_hours() -> None:
    """Free-form answers 131047 until /_sandbox/inbound records the customer, and again after 24 h."""
    fake = FakeWhatsApp()
    api = client(fake)
    assert api.post(SEND, json=TEXT, headers=AUTH).json()["error"]["code"] == 131047
    api.post("/_sandbox/inbound", json={"from": "16505551234", "at": time.time() - 25 * 3600})
    assert api.post(SEND, json=TEXT, headers=AUTH).json()["error"]["code"] == 131047
    api.post("/_sandbox/inbound", json={"from": "16505551234"})
    sent = api.post(SEND, json=TEXT, headers=AUTH).json()
    assert sent["messages"][0]["id"].startswith("wamid.") and sent["contacts"][0]["wa_id"] == "16505551234"
    assert api.get("/_sandbox/state").json()["sent"][0]["id"] == sent["messages"][0]["id"]


def test_scripted_failures_latency_and_rate_limit_settings() -> None:
    """fail_next answers the next sends with the code; over the rate limit answers 429 / 130429."""
    fake = FakeWhatsApp()
    api = client(fake)
    api.post("/_sandbox/inbound", json={"from": "16505551234"})
    api.post("/_sandbox/fail_next", json={"code": 131026, "count": 2})
    codes = [api.post(SEND, json=TEXT, headers=AUTH).json().get("error", {}).get("code") for _ in range(3)]
    assert codes == [131026, 131026, None]
    assert api.post("/_sandbox/settings", json={"rate_limit": 1, "latency": 0.01}).json()["latency"] == 0.01
    api.post(SEND, json=TEXT, headers=AUTH)
    limited = api.post(SEND, json=TEXT, headers=AUTH)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    error = limited.json()["error"]
    assert error["code"] == 130429 and error["error_data"]["details"].startswith("Message failed to send")


def test_template_list_pages_with_cursors_and_needs_auth() -> None:
    """limit/after cursors and paging.next until the last page; no bearer: 190; a bad limit: 100."""
    api = client(FakeWhatsApp())
    path = f"/v23.0/{SANDBOX_WABA_ID}/message_templates"
    assert api.get(path).json()["error"]["code"] == 190
    first = api.get(path, params={"limit": 2, "fields": "name,status"}, headers=AUTH).json()
    assert [t["name"] for t in first["data"]] == ["hello_world", "order_update"]
    assert set(first["data"][0]) == {"name", "status", "id"} and first["paging"]["cursors"]["after"]
    last = api.get(first["paging"]["next"], headers=AUTH).json()
    assert [t["name"] for t in last["data"]] == ["spring_sale"] and "next" not in last["paging"]
    assert last["data"][0]["status"] == "PAUSED"
    assert api.get(path, params={"limit": 0}, headers=AUTH).json()["error"]["code"] == 100
