"""The sandbox has FCM's layout and error shapes, and says it is not built yet."""

from __future__ import annotations

from fastapi.testclient import TestClient
from tessera_push_fcm.channel import FcmChannel

SEND = "/v1/projects/shop/messages:send"


def client() -> TestClient:
    """A test client on the channel's own sandbox app."""
    return TestClient(FcmChannel().sandbox_app())


def test_without_bearer_token_answers_google_401() -> None:
    """A call without credentials gets Google's UNAUTHENTICATED envelope."""
    response = client().post(SEND, json={"message": {"token": "t"}})
    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"
    assert response.json()["error"]["code"] == 401


def test_with_bearer_token_answers_google_501() -> None:
    """An authenticated call gets Google's envelope with 501 UNIMPLEMENTED, naming the call."""
    response = client().post(SEND, json={}, headers={"Authorization": "Bearer ya29.fake"})
    assert response.status_code == 501
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (501, "UNIMPLEMENTED")
    assert "not built yet" in error["message"] and SEND in error["message"]


def test_token_endpoint_needs_no_bearer_and_is_not_built() -> None:
    """The OAuth token endpoint answers in OAuth's own error shape."""
    response = client().post("/token", data={"grant_type": "x", "assertion": "y"})
    assert response.status_code == 501
    assert "not built yet" in response.json()["error_description"]
