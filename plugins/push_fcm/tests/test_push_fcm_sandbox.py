"""The fake FCM in-process: token endpoint checks, request validation, error shapes, controls."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from tessera_push_fcm.channel import FcmChannel
from tessera_push_fcm.sender import SCOPE
from tessera_push_fcm.testkeys import CLIENT_EMAIL, test_service_account

SEND = "/v1/projects/shop/messages:send"
TOKEN_URI = "http://testserver/token"
GOOD = "dGVzdC10b2tlbi0x:APA91bHk"


def client() -> TestClient:
    """A test client on the channel's own sandbox app (trusting the test service account)."""
    return TestClient(FcmChannel().sandbox_app())


def assertion(**changes: Any) -> str:
    """A JWT bearer assertion signed by the test service account, with ``changes`` to its claims."""
    now = int(time.time())
    claims = {"iss": CLIENT_EMAIL, "scope": SCOPE, "aud": TOKEN_URI, "iat": now, "exp": now + 3600, **changes}
    key = changes.pop("_key", None) or test_service_account()["private_key"]
    claims.pop("_key", None)
    return jwt.encode(claims, key, algorithm="RS256")


def grant(app: TestClient, token: str) -> Any:
    """Post a JWT bearer grant."""
    return app.post(
        "/token", data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": token}
    )


def authed(app: TestClient) -> dict[str, str]:
    """Headers with a valid access token from the fake's token endpoint."""
    return {"Authorization": f"Bearer {grant(app, assertion()).json()['access_token']}"}


def test_token_endpoint_issues_a_bearer_token() -> None:
    """A well-signed assertion gets Google's token answer."""
    body = grant(client(), assertion()).json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599 and body["access_token"]


@pytest.mark.parametrize(
    ("changes", "error"),
    [({"aud": "https://elsewhere/token"}, "invalid_grant"), ({"scope": "https://x/other"}, "invalid_scope"),
     ({"exp": int(time.time()) + 7200}, "invalid_grant"), ({"iss": "stranger@x"}, "invalid_grant")],
)  # fmt: skip
def test_token_endpoint_refuses_bad_assertions(changes: dict[str, Any], error: str) -> None:
    """Wrong audience, scope, lifetime or account: OAuth's 400 error."""
    answer = grant(client(), assertion(**changes))
    assert answer.status_code == 400 and answer.json()["error"] == error


def test_token_endpoint_checks_the_signature() -> None:
    """An assertion signed with another key is refused as an invalid signature."""
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    answer = grant(client(), assertion(_key=other))
    assert answer.json() == {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}


def test_send_needs_a_valid_bearer_token() -> None:
    """Missing or unknown bearer: Google's 401 UNAUTHENTICATED envelope."""
    app = client()
    for headers in [{}, {"Authorization": "Bearer ya29.unknown"}]:
        answer = app.post(SEND, json={"message": {"token": GOOD}}, headers=headers)
        assert answer.status_code == 401 and answer.json()["error"]["status"] == "UNAUTHENTICATED"


def test_snake_and_camel_case_both_accepted_and_recorded() -> None:
    """Proto3 JSON names in either case are accepted; the state records what was received and sent."""
    app = client()
    headers = authed(app)
    snake = {
        "message": {"token": GOOD, "fcm_options": {"analytics_label": "c1"}, "android": {"collapse_key": "k"}}
    }
    camel = {"message": {"token": GOOD, "fcmOptions": {"analyticsLabel": "c1"}}}
    for body in (snake, camel):
        answer = app.post(SEND, json=body, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["name"].startswith("projects/shop/messages/")
    state = app.get("/_sandbox/state").json()
    assert len(state["received"]) == 2 and state["sent"][0]["message"]["fcmOptions"] == {
        "analyticsLabel": "c1"
    }


@pytest.mark.parametrize(
    ("message", "said"),
    [({"token": GOOD, "foo": 1}, "foo"), ({"token": GOOD, "data": {"n": 12}}, "12"),
     ({"token": GOOD, "topic": "news"}, "Exactly one"),
     ({"token": GOOD, "data": {"google.x": "1"}}, "google.x"),
     ({"token": GOOD, "data": {"k": "x" * 5000}}, "too big"), ({}, "Exactly one")],
)  # fmt: skip
def test_invalid_messages_get_bad_request_details(message: dict[str, Any], said: str) -> None:
    """Schema and FCM rule violations: 400 INVALID_ARGUMENT with a BadRequest field violation."""
    app = client()
    answer = app.post(SEND, json={"message": message}, headers=authed(app))
    error = answer.json()["error"]
    assert (answer.status_code, error["status"]) == (400, "INVALID_ARGUMENT")
    assert said in error["message"]
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"


def test_validate_only_sends_nothing() -> None:
    """validate_only answers the fake message name and records nothing as sent."""
    app = client()
    answer = app.post(SEND, json={"validate_only": True, "message": {"token": GOOD}}, headers=authed(app))
    assert answer.json() == {"name": "projects/shop/messages/fake_message_id"}
    assert app.get("/_sandbox/state").json()["sent"] == []


def test_unregistered_and_scripted_failures_use_fcm_error_details() -> None:
    """Dead tokens answer UNREGISTERED; a scripted 429 carries QUOTA_EXCEEDED and Retry-After, once."""
    app = client()
    headers = authed(app)
    app.post("/_sandbox/unregister", json={"tokens": [GOOD]})
    gone = app.post(SEND, json={"message": {"token": GOOD}}, headers=headers)
    assert gone.status_code == 404 and gone.json()["error"]["details"][0]["errorCode"] == "UNREGISTERED"
    app.post("/_sandbox/fail", json={"status": 429, "retry_after": 5})
    other = {"message": {"token": GOOD + "x"}}
    limited = app.post(SEND, json=other, headers=headers)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "5"
    assert limited.json()["error"]["details"][0] == {
        "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
        "errorCode": "QUOTA_EXCEEDED",
    }
    assert app.post(SEND, json=other, headers=headers).status_code == 200


def test_a_failure_scripted_for_one_token_spares_the_others() -> None:
    """A failure scripted for a token answers only sends to that token, in FCM's envelope."""
    app = client()
    headers = authed(app)
    app.post("/_sandbox/fail", json={"status": 503, "retry_after": 2, "token": GOOD})
    assert app.post(SEND, json={"message": {"token": GOOD + "x"}}, headers=headers).status_code == 200
    failing = app.post(SEND, json={"message": {"token": GOOD}}, headers=headers)
    assert failing.status_code == 503 and failing.json()["error"]["status"] == "UNAVAILABLE"
    assert app.post(SEND, json={"message": {"token": GOOD}}, headers=headers).status_code == 200


def test_accounts_endpoint_takes_only_rsa_public_keys() -> None:
    """Introducing an account needs a PEM RSA public key."""
    answer = client().post("/_sandbox/accounts", json={"client_email": "a@b", "public_key_pem": "nope"})
    assert answer.status_code == 400


def test_other_paths_are_not_served() -> None:
    """The deprecated batch endpoint and others answer Google's 404."""
    answer = client().post("/batch", json={})
    assert answer.status_code == 404 and answer.json()["error"]["status"] == "NOT_FOUND"
