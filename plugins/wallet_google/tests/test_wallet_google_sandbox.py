"""The sandbox has Google Wallet's layout and error shapes, and says it is not built yet."""

from __future__ import annotations

from fastapi.testclient import TestClient
from tessera_wallet_google.channel import GoogleWalletChannel

INSERT = "/walletobjects/v1/loyaltyObject"


def client() -> TestClient:
    """A test client on the channel's own sandbox app."""
    return TestClient(GoogleWalletChannel().sandbox_app())


def test_without_bearer_token_answers_google_401() -> None:
    """A call without credentials gets Google's UNAUTHENTICATED envelope."""
    response = client().post(INSERT, json={"id": "1.a", "classId": "1.c", "state": "ACTIVE"})
    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"
    assert response.json()["error"]["code"] == 401


def test_with_bearer_token_answers_google_501() -> None:
    """An authenticated call gets Google's envelope with 501 UNIMPLEMENTED, naming the call."""
    response = client().get(f"{INSERT}/1.a", headers={"Authorization": "Bearer ya29.fake"})
    assert response.status_code == 501
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (501, "UNIMPLEMENTED")
    assert "not built yet" in error["message"] and f"GET {INSERT}/1.a" in error["message"]


def test_token_endpoint_needs_no_bearer_and_is_not_built() -> None:
    """The OAuth token endpoint answers in OAuth's own error shape."""
    response = client().post("/token", data={"grant_type": "x", "assertion": "y"})
    assert response.status_code == 501
    assert "not built yet" in response.json()["error_description"]
