"""The fake Google: OAuth, the Wallet REST API, the save page and callbacks, as Google behaves."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from httpx import Response
from tessera_wallet_google.callbacks import KEYS_PATH, parse_root_keys, verify_callback
from tessera_wallet_google.sandbox import create_sandbox_app
from tessera_wallet_google.testkeys import test_service_account, test_signer

ISSUER = "3388000000012345"
CLASS_ID = f"{ISSUER}.gold"
OBJECT_ID = f"{ISSUER}.member-1"
SCOPE = "https://www.googleapis.com/auth/wallet_object.issuer"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
API = "/walletobjects/v1"
ACCOUNT = test_service_account()
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_PEM = OTHER_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()


def loyalty_class(class_id: str = CLASS_ID, **extra: Any) -> dict[str, Any]:
    """A minimal valid LoyaltyClass."""
    return {
        "id": class_id,
        "issuerName": "Tessera Coffee",
        "programName": "Beans",
        "programLogo": {"sourceUri": {"uri": "https://example.com/logo.png"}},
        "reviewStatus": "UNDER_REVIEW",
        **extra,
    }


def loyalty_object(object_id: str = OBJECT_ID, class_id: str = CLASS_ID, **extra: Any) -> dict[str, Any]:
    """A minimal valid LoyaltyObject."""
    return {"id": object_id, "classId": class_id, "state": "ACTIVE", **extra}


def assertion(key: str = ACCOUNT["private_key"], **changes: Any) -> str:
    """A token request's assertion as google-auth builds it; ``changes`` replace or drop (None) claims."""
    now = int(time.time())
    claims = {
        "iss": ACCOUNT["client_email"],
        "scope": SCOPE,
        "aud": GOOGLE_TOKEN_URI,
        "iat": now,
        "exp": now + 3600,
    }
    claims.update(changes)
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": ACCOUNT["private_key_id"]})


def get_token(client: TestClient, **changes: Any) -> Response:
    """The token endpoint's answer to a JWT bearer grant."""
    return client.post("/token", data={"grant_type": JWT_BEARER, "assertion": assertion(**changes)})


def authorized(client: TestClient) -> dict[str, str]:
    """Headers carrying a fresh access token."""
    return {"Authorization": f"Bearer {get_token(client).json()['access_token']}"}


def save_jwt(payload: dict[str, Any], key: str = ACCOUNT["private_key"], **changes: Any) -> str:
    """A "Save to Google Wallet" JWT as the channel signs it."""
    claims = {"iss": ACCOUNT["client_email"], "aud": "google", "typ": "savetowallet", "iat": int(time.time()),
              "origins": ["https://shop.example.com"], "payload": payload, **changes}  # fmt: skip
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": ACCOUNT["private_key_id"]})


def error_of(response: Response) -> tuple[int, str, str]:
    """Code, status and message of Google's error envelope."""
    error = response.json()["error"]
    return error["code"], error["status"], error["message"]


@pytest.fixture
def client() -> Iterator[TestClient]:
    """A fresh fake, standalone."""
    with TestClient(create_sandbox_app()) as test_client:
        yield test_client


@pytest.fixture
def api(client: TestClient) -> TestClient:
    """The fake with a valid token in every request's headers."""
    client.headers.update(authorized(client))
    return client


class Receiver:
    """A tiny HTTP server on a free local port that keeps the bodies POSTed to it."""

    def __init__(self) -> None:
        received: list[tuple[str, str, bytes]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received.append((self.path, self.headers.get("content-type", ""), body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass  # keep the test output clean

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/acme/wallet_google"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A callback receiver, stopped after the test."""
    server = Receiver()
    yield server
    server.close()


# --- OAuth ------------------------------------------------------------------------------------------


def test_token_from_a_signed_assertion(client: TestClient) -> None:
    """A well-signed assertion gets a bearer token, for Google's token URI or the fake's own."""
    answer = get_token(client)
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["access_token"].startswith("ya29.") and (body["expires_in"], body["token_type"]) == (
        3599,
        "Bearer",
    )
    assert get_token(client, aud="http://testserver/token").status_code == 200
    assert get_token(client, aud="http://127.0.0.1:8000/sandbox/acme/wallet_google/token").status_code == 200
    assert client.get("/_sandbox/state").json()["tokens_issued"] == 3


@pytest.mark.parametrize(
    ("changes", "error", "mentions"),
    [
        ({"key": OTHER_PEM}, "invalid_grant", "Signature"),
        ({"aud": "https://example.com/token"}, "invalid_grant", "audience"),
        ({"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}, "invalid_grant", "short-lived"),
        ({"exp": int(time.time()) + 7200}, "invalid_grant", "short-lived"),
        ({"scope": None}, "invalid_scope", "scope"),
        ({"scope": "https://www.googleapis.com/auth/cloud-platform"}, "invalid_scope", "scope"),
        ({"iss": "someone@else.iam.gserviceaccount.com"}, "invalid_grant", "account not found"),
    ],
)
def test_refused_assertions_answer_in_oauth_shape(
    client: TestClient, changes: dict[str, Any], error: str, mentions: str
) -> None:
    """A wrong key, audience, lifetime, scope or account: 400 with OAuth's error and description."""
    answer = get_token(client, **changes)
    assert answer.status_code == 400
    assert set(answer.json()) == {"error", "error_description"}
    assert answer.json()["error"] == error and mentions in answer.json()["error_description"]
    assert client.get("/_sandbox/state").json()["tokens_issued"] == 0


def test_wrong_grant_type_or_no_assertion(client: TestClient) -> None:
    """Only the JWT bearer grant is supported, and it needs its assertion."""
    answer = client.post("/token", data={"grant_type": "client_credentials", "assertion": assertion()})
    assert (answer.status_code, answer.json()["error"]) == (400, "unsupported_grant_type")
    answer = client.post("/token", data={"grant_type": JWT_BEARER})
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")


def test_api_needs_a_valid_unexpired_token(client: TestClient) -> None:
    """No token, a token the fake never issued, or an expired one: 401 UNAUTHENTICATED."""
    url = f"{API}/loyaltyClass/{CLASS_ID}"
    missing = client.get(url)
    assert error_of(missing)[:2] == (401, "UNAUTHENTICATED") and "missing" in error_of(missing)[2]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert error_of(client.get(url, headers={"Authorization": "Bearer ya29.made-up"}))[:2] == (
        401,
        "UNAUTHENTICATED",
    )
    headers = authorized(client)
    assert client.get(url, headers=headers).status_code == 404  # authenticated: the class is just not there
    assert client.post("/_sandbox/expire_tokens").json() == {"expired": 1}
    assert error_of(client.get(url, headers=headers))[:2] == (401, "UNAUTHENTICATED")


# --- the Wallet API ---------------------------------------------------------------------------------


def test_insert_get_patch_update_message_list_round_trip(api: TestClient) -> None:
    """Each method answers the stored resource with Google's output fields."""
    inserted = api.post(f"{API}/loyaltyClass", json=loyalty_class())
    assert inserted.status_code == 200 and inserted.json()["kind"] == "walletobjects#loyaltyClass"
    created = api.post(f"{API}/loyaltyObject", json=loyalty_object(accountId="A1"))
    assert created.status_code == 200
    assert created.json() | {} == loyalty_object(
        accountId="A1", kind="walletobjects#loyaltyObject", hasUsers=False
    )
    assert api.get(f"{API}/loyaltyObject/{OBJECT_ID}").json() == created.json()

    points = {"label": "Points", "balance": {"int": 120}}
    patched = api.patch(f"{API}/loyaltyObject/{OBJECT_ID}", json={"loyaltyPoints": points})
    assert patched.status_code == 200
    assert patched.json()["loyaltyPoints"] == points and patched.json()["accountId"] == "A1"

    replaced = api.put(f"{API}/loyaltyObject/{OBJECT_ID}", json=loyalty_object(state="COMPLETED"))
    assert replaced.status_code == 200
    assert replaced.json()["state"] == "COMPLETED" and "accountId" not in replaced.json()  # full replace

    message = {"header": "Hello", "body": "Double points today", "messageType": "TEXT_AND_NOTIFY"}
    added = api.post(f"{API}/loyaltyObject/{OBJECT_ID}/addMessage", json={"message": message})
    assert added.status_code == 200 and added.json()["resource"]["messages"] == [message]
    assert api.get(f"{API}/loyaltyObject/{OBJECT_ID}").json()["messages"] == [message]

    api.post(f"{API}/loyaltyObject", json=loyalty_object(f"{ISSUER}.member-2"))
    listed = api.get(f"{API}/loyaltyObject", params={"classId": CLASS_ID}).json()
    assert [item["id"] for item in listed["resources"]] == [OBJECT_ID, f"{ISSUER}.member-2"]
    first = api.get(f"{API}/loyaltyObject", params={"classId": CLASS_ID, "maxResults": 1}).json()
    assert [item["id"] for item in first["resources"]] == [OBJECT_ID]
    rest = api.get(f"{API}/loyaltyObject", params={"classId": CLASS_ID, "maxResults": 1,
                                                   "token": first["pagination"]["nextPageToken"]}).json()  # fmt: skip
    assert [item["id"] for item in rest["resources"]] == [f"{ISSUER}.member-2"]
    assert "nextPageToken" not in rest["pagination"]
    classes = api.get(f"{API}/loyaltyClass", params={"issuerId": ISSUER}).json()["resources"]
    assert [item["id"] for item in classes] == [CLASS_ID]

    state = api.get("/_sandbox/state").json()
    assert set(state["objects"]) == {OBJECT_ID, f"{ISSUER}.member-2"} and set(state["classes"]) == {CLASS_ID}
    assert state["messages"][OBJECT_ID][0]["body"] == "Double points today"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (loyalty_object(loyaltyPointz={"balance": {"int": 1}}), "loyaltyPointz"),
        (loyalty_object(state="SHINY"), "state"),
        (loyalty_object(barcode={"type": "QR", "value": "1"}), "barcode.type"),
        ({"id": OBJECT_ID, "classId": CLASS_ID}, "state"),
    ],
)
def test_invalid_bodies_are_refused_naming_the_path(api: TestClient, body: dict[str, Any], path: str) -> None:
    """Unknown property, wrong enum, missing required field: 400 INVALID_ARGUMENT naming where."""
    api.post(f"{API}/loyaltyClass", json=loyalty_class())
    code, status, message = error_of(api.post(f"{API}/loyaltyObject", json=body))
    assert (code, status) == (400, "INVALID_ARGUMENT") and path in message
    assert api.get("/_sandbox/state").json()["objects"] == {}


def test_ids_and_merged_patches_are_checked(api: TestClient) -> None:
    """Ids must be '<issuerId>.<identifier>'; a patch is refused when the merged result is invalid."""
    code, status, message = error_of(api.post(f"{API}/loyaltyClass", json=loyalty_class("gold")))
    assert (code, status) == (400, "INVALID_ARGUMENT") and "id" in message
    api.post(f"{API}/loyaltyClass", json=loyalty_class())
    api.post(f"{API}/loyaltyObject", json=loyalty_object())
    refused = api.patch(f"{API}/loyaltyObject/{OBJECT_ID}", json={"state": "SHINY"})
    assert error_of(refused)[:2] == (400, "INVALID_ARGUMENT") and "state" in error_of(refused)[2]
    other_id = api.patch(f"{API}/loyaltyObject/{OBJECT_ID}", json={"id": f"{ISSUER}.x"})
    assert error_of(other_id)[:2] == (400, "INVALID_ARGUMENT")
    assert api.get(f"{API}/loyaltyObject/{OBJECT_ID}").json()["state"] == "ACTIVE"


def test_conflicts_and_missing_resources(api: TestClient) -> None:
    """Duplicate insert 409; unknown id 404; an object of a missing (or other kind's) class 404."""
    assert error_of(api.post(f"{API}/loyaltyObject", json=loyalty_object()))[:2] == (404, "NOT_FOUND")
    api.post(f"{API}/loyaltyClass", json=loyalty_class())
    assert error_of(api.post(f"{API}/loyaltyClass", json=loyalty_class()))[:2] == (409, "ALREADY_EXISTS")
    assert error_of(api.get(f"{API}/loyaltyObject/{ISSUER}.nobody"))[:2] == (404, "NOT_FOUND")
    assert error_of(api.patch(f"{API}/loyaltyObject/{ISSUER}.nobody", json={}))[:2] == (404, "NOT_FOUND")
    assert error_of(api.get(f"{API}/offerClass/{CLASS_ID}"))[:2] == (404, "NOT_FOUND")  # it is a loyaltyClass
    offer = {"id": f"{ISSUER}.o1", "classId": CLASS_ID, "state": "ACTIVE"}
    assert error_of(api.post(f"{API}/offerObject", json=offer))[:2] == (404, "NOT_FOUND")
    assert error_of(api.post(f"{API}/eventTicketObject", json=offer))[:2] == (501, "UNIMPLEMENTED")


def test_fourth_notifying_message_in_a_day_is_refused(api: TestClient) -> None:
    """Three TEXT_AND_NOTIFY per pass per 24 h; then 429 (TEXT still works); at most 10 messages kept."""
    api.post(f"{API}/loyaltyClass", json=loyalty_class())
    api.post(f"{API}/loyaltyObject", json=loyalty_object())
    url = f"{API}/loyaltyObject/{OBJECT_ID}/addMessage"

    def add(number: int, kind: str) -> Response:
        return api.post(
            url, json={"message": {"id": str(number), "header": "H", "body": "B", "messageType": kind}}
        )

    assert [add(n, "TEXT_AND_NOTIFY").status_code for n in range(3)] == [200, 200, 200]
    code, status, message = error_of(add(3, "TEXT_AND_NOTIFY"))
    assert (code, status) == (429, "RESOURCE_EXHAUSTED") and "quota" in message.lower()
    for number in range(3, 12):
        assert add(number, "TEXT").status_code == 200
    kept = api.get(f"{API}/loyaltyObject/{OBJECT_ID}").json()["messages"]
    assert [item["id"] for item in kept] == [str(n) for n in range(2, 12)]  # the oldest dropped
    fake = api.app.state.google  # type: ignore[attr-defined]
    fake.clock = lambda: time.time() + 24 * 3600 + 1  # a day later the quota is back...
    assert add(12, "TEXT_AND_NOTIFY").status_code == 401  # ...and the token has long expired
    api.headers.update(authorized(api))
    assert add(12, "TEXT_AND_NOTIFY").status_code == 200


def test_injected_failures_and_delay(client: TestClient) -> None:
    """Scripted statuses answer the next matching calls in Google's envelope; delay slows every call."""
    headers = authorized(client)
    client.post("/_sandbox/fail", json={"status": 503, "times": 2, "path_contains": "loyaltyObject"})
    client.post("/_sandbox/fail", json={"status": 429, "path_contains": "offerClass", "retry_after": 7})
    assert client.post(f"{API}/loyaltyClass", json=loyalty_class(), headers=headers).status_code == 200
    for _ in range(2):
        assert error_of(client.post(f"{API}/loyaltyObject", json=loyalty_object(), headers=headers))[:2] == (
            503, "UNAVAILABLE",
        )  # fmt: skip
    assert client.post(f"{API}/loyaltyObject", json=loyalty_object(), headers=headers).status_code == 200
    throttled = client.get(f"{API}/offerClass/{ISSUER}.x", headers=headers)
    assert error_of(throttled)[:2] == (429, "RESOURCE_EXHAUSTED") and throttled.headers["retry-after"] == "7"
    client.post("/_sandbox/fail", json={"status": 500})
    assert get_token(client).status_code == 200  # a failure without a path aims at the API, not OAuth
    assert error_of(client.get(f"{API}/loyaltyClass/{CLASS_ID}", headers=headers))[:2] == (500, "INTERNAL")
    assert client.get("/_sandbox/state").json()["failures"] == []

    client.post("/_sandbox/delay", json={"seconds": 0.1})
    started = time.perf_counter()
    assert client.get(f"{API}/loyaltyClass/{CLASS_ID}", headers=headers).status_code == 200
    assert time.perf_counter() - started >= 0.1
    client.post("/_sandbox/reset")
    state = client.get("/_sandbox/state").json()
    assert (state["objects"], state["classes"], state["delay"], state["tokens_issued"]) == ({}, {}, 0.0, 0)


# --- the save page and callbacks ------------------------------------------------------------------


def test_save_page_stores_the_jwt_resources(api: TestClient) -> None:
    """A good JWT saves its class and object; an existing object is kept as it is (skinny JWT)."""
    payload = {"loyaltyClasses": [loyalty_class()], "loyaltyObjects": [loyalty_object(accountId="A1")]}
    page = api.get(f"/gp/v/save/{save_jwt(payload)}")
    assert page.status_code == 200 and "Saved to Google Wallet" in page.text and OBJECT_ID in page.text
    stored = api.get(f"{API}/loyaltyObject/{OBJECT_ID}").json()
    assert stored["accountId"] == "A1" and stored["hasUsers"] is True
    assert api.get(f"/gp/v/save/{save_jwt({'loyaltyObjects': [{'id': OBJECT_ID, 'classId': CLASS_ID, 'state': 'EXPIRED'}]})}").status_code == 200  # fmt: skip
    assert api.get(f"{API}/loyaltyObject/{OBJECT_ID}").json()["state"] == "ACTIVE"
    assert api.get(f"/gp/v/save/{save_jwt({'loyaltyObjects': [{'id': OBJECT_ID}]})}").status_code == 200


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (save_jwt({"loyaltyObjects": [loyalty_object()]}, key=OTHER_PEM), "signature"),
        (save_jwt({"loyaltyObjects": [loyalty_object()]}, aud="someone"), "aud: expected"),
        (save_jwt({"loyaltyObjects": [loyalty_object()]}, typ="other"), "typ"),
        (save_jwt({"loyaltyObjects": [loyalty_object()]}, origins="https://a.example"), "origins"),
        (save_jwt({"loyaltyObjects": [loyalty_object()]}), "class not found"),
        (save_jwt({"loyaltyObjects": [{"id": OBJECT_ID, "classId": CLASS_ID}]}), "state"),
        (save_jwt({"loyaltyThings": []}), "loyaltyThings"),
        ("not-a-jwt", "JWT"),
    ],
)
def test_save_page_refuses_bad_links(client: TestClient, token: str, reason: str) -> None:
    """Another key, audience, typ, origins, a missing class or invalid object: 400 with the reason, nothing saved."""
    page = client.get(f"/gp/v/save/{token}")
    assert page.status_code == 400 and reason in page.text
    assert client.get("/_sandbox/state").json()["objects"] == {}


def test_save_and_delete_post_signed_callbacks(client: TestClient, receiver: Receiver) -> None:
    """The class's callback URL gets a signed save (then del) callback that verifies for the issuer."""
    with_callback = loyalty_class(callbackOptions={"url": receiver.url})
    quiet = loyalty_class(f"{ISSUER}.quiet")
    payload = {"loyaltyClasses": [with_callback, quiet],
               "loyaltyObjects": [loyalty_object(), loyalty_object(f"{ISSUER}.m2", f"{ISSUER}.quiet")]}  # fmt: skip
    page = client.get(f"/gp/v/save/{save_jwt(payload)}")
    assert page.status_code == 200 and f"save {OBJECT_ID} -&gt; {receiver.url}: 200" in page.text
    assert len(receiver.received) == 1  # the class without callbackOptions gets none
    path, content_type, body = receiver.received[0]
    assert path == "/webhooks/acme/wallet_google" and content_type == "application/json"
    root_keys = parse_root_keys(json.dumps(client.get(KEYS_PATH).json()))
    event = verify_callback(body, issuer_id=ISSUER, root_keys=root_keys)
    assert (event.class_id, event.object_id, event.event_type) == (CLASS_ID, OBJECT_ID, "save")

    removed = client.post("/_sandbox/callback", json={"object_id": OBJECT_ID, "event_type": "del"}).json()
    assert removed["callback"]["status"] == 200 and removed["callback"]["event_type"] == "del"
    assert verify_callback(receiver.received[1][2], issuer_id=ISSUER, root_keys=root_keys).event_type == "del"
    callbacks = client.get("/_sandbox/state").json()["callbacks"]
    assert [(item["event_type"], item["status"]) for item in callbacks] == [("save", 200), ("del", 200)]
    assert client.post(
        "/_sandbox/callback", json={"object_id": f"{ISSUER}.m2", "event_type": "del"}
    ).json() == {"callback": None}
    assert (
        client.post("/_sandbox/callback", json={"object_id": f"{ISSUER}.x", "event_type": "del"}).status_code
        == 404
    )


def test_unreachable_callback_is_recorded_not_fatal(client: TestClient) -> None:
    """A callback URL nobody answers: the save still works, the error is recorded."""
    payload = {"loyaltyClasses": [loyalty_class(callbackOptions={"url": "http://127.0.0.1:9/nowhere"})],
               "loyaltyObjects": [loyalty_object()]}  # fmt: skip
    assert client.get(f"/gp/v/save/{save_jwt(payload)}").status_code == 200
    (record,) = client.get("/_sandbox/state").json()["callbacks"]
    assert record["status"] is None and record["error"]


def test_keys_document_and_trusted_accounts() -> None:
    """The keys endpoint serves the test signer's roots; only the trusted accounts get tokens."""
    other_public = (
        OTHER_KEY.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    email = "gateway@example.iam.gserviceaccount.com"
    with TestClient(create_sandbox_app(trusted_keys={email: other_public})) as client:
        assert client.get(KEYS_PATH).json() == test_signer().keys_document()
        assert get_token(client, key=OTHER_PEM, iss=email).status_code == 200
        assert get_token(client).json()["error"] == "invalid_grant"  # the test account is not trusted here
