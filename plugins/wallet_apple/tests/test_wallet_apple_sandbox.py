"""The sandbox has APNs's layout and error shape, and says it is not built yet."""

from __future__ import annotations

from fastapi.testclient import TestClient
from tessera_wallet_apple.channel import AppleWalletChannel

PUSH = "/3/device/" + "ab" * 32
AUTH = {"authorization": "bearer eyJ.fake.jwt", "apns-topic": "pass.com.shop.loyalty"}


def client() -> TestClient:
    """A test client on the channel's own sandbox app."""
    return TestClient(AppleWalletChannel().sandbox_app())


def test_without_credentials_answers_like_apns() -> None:
    """No credential at all: APNs's 403 MissingProviderToken, with an apns-id."""
    response = client().post(PUSH, json={})
    assert response.status_code == 403
    assert response.json() == {"reason": "MissingProviderToken"}
    assert response.headers["apns-id"]


def test_with_credentials_answers_501_in_apns_shape() -> None:
    """An authenticated push gets {"reason": ...} with 501, naming the call."""
    response = client().post(PUSH, json={}, headers=AUTH)
    assert response.status_code == 501
    assert set(response.json()) == {"reason"}
    assert "not built yet" in response.json()["reason"] and PUSH in response.json()["reason"]
    assert response.headers["apns-id"]


def test_wrong_method_and_path_answer_like_apns() -> None:
    """APNs only takes POST /3/device/{token}."""
    assert client().get(PUSH, headers=AUTH).json() == {"reason": "MethodNotAllowed"}
    response = client().post("/3/elsewhere", json={}, headers=AUTH)
    assert (response.status_code, response.json()) == (404, {"reason": "BadPath"})
