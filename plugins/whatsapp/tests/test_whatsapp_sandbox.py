"""The sandbox has the Graph API's layout and error shapes, and says it is not built yet."""

from __future__ import annotations

from fastapi.testclient import TestClient
from tessera_whatsapp.channel import WhatsAppChannel

SEND = "/v23.0/106540352242922/messages"


def client() -> TestClient:
    """A test client on the channel's own sandbox app."""
    return TestClient(WhatsAppChannel().sandbox_app())


def test_without_bearer_token_answers_meta_401() -> None:
    """A call without an access token gets Meta's OAuthException, code 190."""
    response = client().post(SEND, json={"messaging_product": "whatsapp"})
    assert response.status_code == 401
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("OAuthException", 190)
    assert error["fbtrace_id"]


def test_with_bearer_token_answers_meta_501() -> None:
    """An authenticated call gets Meta's envelope with 501, naming the call."""
    response = client().post(SEND, json={}, headers={"Authorization": "Bearer EAAG-token"})
    assert response.status_code == 501
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("GraphMethodException", 100)
    assert "not built yet" in error["message"] and SEND in error["message"]
    assert error["fbtrace_id"]
