"""The fakes' token endpoint: what it accepts and refuses, and trusting accounts made elsewhere."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from google_auth_support import PLUGIN_KEY, SCOPE, account, fake_google, generated
from tessera_google_auth import introduce
from tessera_google_auth.fake import bearer
from tessera_google_auth.introduce import introduced
from tessera_google_auth.testkeys import generate_account
from tessera_google_auth.tokens import JWT_BEARER

GOOGLE = "https://oauth2.googleapis.com/token"


def assertion(key: str | None = None, **changes: Any) -> str:
    """A token request's assertion by the test account; ``changes`` replace or drop (None) claims."""
    now = int(time.time())
    claims = {"iss": account().client_email, "scope": SCOPE, "aud": GOOGLE, "iat": now, "exp": now + 3600}
    claims = {name: value for name, value in {**claims, **changes}.items() if value is not None}
    return jwt.encode(claims, key or generated().info["private_key"], algorithm="RS256")


def grant(client: TestClient, token: str | None, grant_type: str = JWT_BEARER) -> httpx.Response:
    data = {"grant_type": grant_type} | ({"assertion": token} if token is not None else {})
    return client.post("/token", data=data)


def test_a_good_assertion_gets_googles_token_answer() -> None:
    """For Google's token URI, the fake's own, or the one behind the core's mount."""
    with TestClient(fake_google()) as client:
        for audience in (
            GOOGLE,
            "http://testserver/token",
            f"http://127.0.0.1:8000/sandbox/acme/{PLUGIN_KEY}/token",
        ):
            answer = grant(client, assertion(aud=audience))
            assert answer.status_code == 200, answer.text
            assert set(answer.json()) == {"access_token", "expires_in", "token_type"}
            assert answer.json()["expires_in"] == 3599


@pytest.mark.parametrize(
    ("changes", "error", "mentions"),
    [
        ({"aud": "https://example.com/token"}, "invalid_grant", "audience"),
        ({"aud": "http://127.0.0.1/sandbox/acme/other_plugin/token"}, "invalid_grant", "audience"),
        ({"exp": int(time.time()) + 7200}, "invalid_grant", "short-lived"),
        ({"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}, "invalid_grant", "short-lived"),
        ({"scope": None}, "invalid_scope", "scope"),
        ({"scope": "https://www.googleapis.com/auth/cloud-platform"}, "invalid_scope", "scope"),
        ({"iss": "someone@else.iam.gserviceaccount.com"}, "invalid_grant", "account not found"),
    ],
)
def test_bad_assertions_are_refused_in_oauths_shape(
    changes: dict[str, Any], error: str, mentions: str
) -> None:
    """Wrong audience, lifetime, scope or account: 400 with OAuth's error and Google's description."""
    app = fake_google()
    with TestClient(app) as client:
        answer = grant(client, assertion(**changes))
    assert answer.status_code == 400 and set(answer.json()) == {"error", "error_description"}
    assert answer.json()["error"] == error and mentions in answer.json()["error_description"]
    assert app.state.issued == []


def test_the_signature_is_checked_against_the_trusted_key() -> None:
    """An assertion signed with another key claiming the account: an invalid signature."""
    stranger = generate_account("stranger@example.iam.gserviceaccount.com", "x")
    with TestClient(fake_google()) as client:
        answer = grant(client, assertion(key=stranger.info["private_key"]))
    assert answer.json() == {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}


def test_only_the_jwt_bearer_grant_with_an_assertion() -> None:
    """Another grant type, no assertion, or not a JWT."""
    with TestClient(fake_google()) as client:
        assert grant(client, assertion(), "client_credentials").json()["error"] == "unsupported_grant_type"
        assert grant(client, None).json()["error"] == "invalid_request"
        assert grant(client, "not-a-jwt").json()["error"] == "invalid_grant"


def test_accounts_made_elsewhere_are_trusted_once_introduced(monkeypatch: pytest.MonkeyPatch) -> None:
    """introduce() posts the account's public key once; the fake then issues it tokens."""
    app = fake_google(trusted={})
    with TestClient(app) as client:
        assert grant(client, assertion()).json()["error"] == "invalid_grant"
        posts: list[str] = []

        def post(url: str, **kwargs: Any) -> httpx.Response:
            posts.append(url)
            return client.post(url.removeprefix("http://testserver"), json=kwargs["json"])

        monkeypatch.setattr(httpx, "post", post)
        introduced.clear()
        introduce("http://testserver/", account())
        introduce("http://testserver/", account())
        assert posts == ["http://testserver/_sandbox/accounts"]
        assert app.state.keys == {account().client_email: generated().public_key_pem()}
        assert grant(client, assertion()).status_code == 200
    introduced.clear()


def test_introduce_tries_again_after_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unreachable sandbox is not remembered: the next call introduces the account again."""
    calls: list[str] = []

    def down(url: str, **kwargs: Any) -> httpx.Response:
        calls.append(url)
        raise httpx.ConnectError("down")

    monkeypatch.setattr(httpx, "post", down)
    introduced.clear()
    introduce("http://sandbox", account())
    introduce("http://sandbox", account())
    assert len(calls) == 2 and not introduced


def test_the_accounts_endpoint_takes_only_rsa_public_keys() -> None:
    """Not PEM, or not RSA: 400 saying so."""
    ec_public = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with TestClient(fake_google(trusted={})) as client:
        for pem, said in (("nope", "not a PEM"), (ec_public, "RSA")):
            answer = client.post("/_sandbox/accounts", json={"client_email": "a@b.c", "public_key_pem": pem})
            assert answer.status_code == 400 and said in answer.json()["error"]


def test_bearer_reads_the_authorization_header() -> None:
    """The token of ``Authorization: Bearer``, case-insensitive scheme; None otherwise."""
    from starlette.requests import Request

    def request(value: str | None) -> Request:
        headers = [(b"authorization", value.encode())] if value is not None else []
        return Request({"type": "http", "headers": headers})

    assert bearer(request("Bearer ya29.x")) == "ya29.x" and bearer(request("bearer  ya29.y ")) == "ya29.y"
    assert (
        bearer(request(None)) is None
        and bearer(request("Basic abc")) is None
        and bearer(request("Bearer ")) is None
    )
