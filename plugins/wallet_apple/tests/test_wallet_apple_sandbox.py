"""The sandbox answers like APNs: its checks in APNs's order, its error shape, and device state to script."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi.testclient import TestClient
from tessera_wallet_apple.channel import AppleWalletChannel
from tessera_wallet_apple.sandbox import MAX_PAYLOAD, create_sandbox_app

TOKEN = "ab" * 32
PUSH = f"/3/device/{TOKEN}"
TOPIC = "pass.com.shop.loyalty"
AUTH = {"authorization": "bearer tessera-sandbox.shop"}
HEADERS = {**AUTH, "apns-topic": TOPIC}


@pytest.fixture
def client() -> TestClient:
    """A test client on the channel's own sandbox app, as the core mounts it."""
    return TestClient(AppleWalletChannel().sandbox_app())


def assert_apns_error(response: httpx.Response, status_code: int, reason: str) -> None:
    """APNs's error shape: the status, ``{"reason": ...}`` and an ``apns-id``."""
    assert (response.status_code, response.json()) == (status_code, {"reason": reason})
    assert response.headers["apns-id"]


def test_a_push_is_accepted_with_an_empty_body_and_an_apns_id(client: TestClient) -> None:
    """200, no body, a fresh upper-case apns-id; the push is kept for the caller to read."""
    response = client.post(PUSH, content=b"{}", headers=HEADERS)
    assert (response.status_code, response.content) == (200, b"")
    assert uuid.UUID(response.headers["apns-id"]) and response.headers["apns-id"].isupper()
    (push,) = client.get("/_sandbox/pushes", headers=AUTH).json()["pushes"]
    assert push["token"] == TOKEN and push["topic"] == TOPIC and push["body"] == "{}"
    assert (push["status"], push["reason"], push["apns_id"]) == (200, None, response.headers["apns-id"])
    assert {"http_version", "peer", "received_at"} <= set(push)


def test_an_apns_id_sent_is_echoed_and_must_be_a_uuid(client: TestClient) -> None:
    """APNs answers with the caller's apns-id, and refuses one that is not a UUID."""
    chosen = str(uuid.uuid4()).upper()
    assert (
        client.post(PUSH, content=b"{}", headers={**HEADERS, "apns-id": chosen}).headers["apns-id"] == chosen
    )
    assert_apns_error(
        client.post(PUSH, content=b"{}", headers={**HEADERS, "apns-id": "x"}), 400, "BadMessageId"
    )


def test_without_credentials_answers_like_apns(client: TestClient) -> None:
    """No bearer (the mount's stand-in for the client certificate): 403 MissingProviderToken."""
    assert_apns_error(
        client.post(PUSH, content=b"{}", headers={"apns-topic": TOPIC}), 403, "MissingProviderToken"
    )
    assert_apns_error(
        client.post(PUSH, content=b"{}", headers={"authorization": "bearer "}), 403, "MissingProviderToken"
    )
    assert_apns_error(client.get("/_sandbox/pushes"), 403, "MissingProviderToken")


def test_wrong_method_and_path_answer_like_apns(client: TestClient) -> None:
    """APNs only takes POST /3/device/{token}."""
    assert_apns_error(client.get(PUSH, headers=HEADERS), 405, "MethodNotAllowed")
    assert_apns_error(client.post("/3/elsewhere", content=b"{}", headers=HEADERS), 404, "BadPath")
    assert_apns_error(client.post(f"{PUSH}/more", content=b"{}", headers=HEADERS), 404, "BadPath")
    assert_apns_error(client.post("/_sandbox/nothing", content=b"{}", headers=HEADERS), 404, "BadPath")


@pytest.mark.parametrize("token", ["ab" * 31, "zz" * 32, "ab" * 101])
def test_a_malformed_device_token_is_bad(client: TestClient, token: str) -> None:
    """Tokens are 64 to 200 hex digits."""
    assert_apns_error(
        client.post(f"/3/device/{token}", content=b"{}", headers=HEADERS), 400, "BadDeviceToken"
    )


def test_the_topic_is_required(client: TestClient) -> None:
    """apns-topic names the pass type identifier; without it, MissingTopic."""
    assert_apns_error(client.post(PUSH, content=b"{}", headers=AUTH), 400, "MissingTopic")


@pytest.mark.parametrize(
    ("body", "status_code", "reason"),
    [
        (b"", 400, "PayloadEmpty"),
        (b"not json", 400, "BadPayload"),
        (b"[]", 400, "BadPayload"),
        (b'{"aps": 1}', 400, "BadPayload"),
        (b'{"aps": {}, "x": "' + b"y" * MAX_PAYLOAD + b'"}', 413, "PayloadTooLarge"),
    ],
)
def test_the_payload_must_be_a_small_json_object(
    client: TestClient, body: bytes, status_code: int, reason: str
) -> None:
    """{} or {"aps": {}} as Wallet sends; APNs's names for everything else."""
    assert_apns_error(client.post(PUSH, content=body, headers=HEADERS), status_code, reason)
    assert client.post(PUSH, content=b'{"aps": {}}', headers=HEADERS).status_code == 200


def test_an_unregistered_token_answers_410_with_a_timestamp(client: TestClient) -> None:
    """After the control endpoint says the pass was removed, APNs's 410 Unregistered with when."""
    marked = client.post(f"/_sandbox/unregistered/{TOKEN.upper()}", headers=AUTH).json()
    assert marked["token"] == TOKEN and isinstance(marked["timestamp"], int)
    response = client.post(PUSH, content=b"{}", headers=HEADERS)
    assert response.status_code == 410 and response.headers["apns-id"]
    assert response.json() == {"reason": "Unregistered", "timestamp": marked["timestamp"]}
    assert_apns_error(client.post("/_sandbox/unregistered/nope", headers=AUTH), 400, "BadDeviceToken")


def test_scripted_failures_answer_once_then_pushes_go_through(client: TestClient) -> None:
    """A scripted 429 with Retry-After is served the given number of times, to the given token only."""
    script = {"status": 429, "reason": "TooManyRequests", "token": TOKEN, "retry_after": 5, "times": 2}
    assert client.post("/_sandbox/failures", json=script, headers=AUTH).status_code == 201
    other = "cd" * 32
    assert client.post(f"/3/device/{other}", content=b"{}", headers=HEADERS).status_code == 200
    for _ in range(2):
        response = client.post(PUSH, content=b"{}", headers=HEADERS)
        assert_apns_error(response, 429, "TooManyRequests")
        assert response.headers["retry-after"] == "5"
    assert client.post(PUSH, content=b"{}", headers=HEADERS).status_code == 200
    assert (
        client.post("/_sandbox/failures", json={"status": 200, "reason": "x"}, headers=AUTH).status_code
        == 422
    )


def test_each_bearer_has_its_own_devices_and_reset_forgets(client: TestClient) -> None:
    """Tenants share the mounted app but not their devices or pushes."""
    client.post(f"/_sandbox/unregistered/{TOKEN}", headers=AUTH)
    client.post(PUSH, content=b"{}", headers=HEADERS)
    other = {"authorization": "bearer tessera-sandbox.other"}
    assert client.post(PUSH, content=b"{}", headers={**other, "apns-topic": TOPIC}).status_code == 200
    assert len(client.get("/_sandbox/pushes", headers=other).json()["pushes"]) == 1
    assert client.post("/_sandbox/reset", headers=AUTH).status_code == 204
    assert client.get("/_sandbox/pushes", headers=AUTH).json() == {"pushes": []}
    assert client.post(PUSH, content=b"{}", headers=HEADERS).status_code == 200


def test_behind_tls_client_auth_no_header_is_asked() -> None:
    """When a TLS server verified the client certificate, the app takes the push as APNs would."""
    client = TestClient(create_sandbox_app(tls_client_auth=True))
    assert client.post(PUSH, content=b"{}", headers={"apns-topic": TOPIC}).status_code == 200
    assert client.app.state.apns.devices().pushes()[0].token == TOKEN  # type: ignore[attr-defined]
