"""Access tokens: the signed assertion, caching and renewal, dropping a refused token, refusals."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import parse_qsl

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient
from google_auth_support import SCOPE, account, fake_google, generated
from tessera_google_auth import TokenCache, TokenRefused
from tessera_google_auth.tokens import JWT_BEARER

from core.plugin_api import DeliveryError, PermanentDeliveryError, TransientDeliveryError

TOKEN_URI = "https://oauth2.example/token"


class TokenEndpoint:
    """A token endpoint over httpx.MockTransport: answers ``expires_in`` tokens and keeps each form."""

    def __init__(self, expires_in: int = 3600, answer: Callable[[], httpx.Response] | None = None) -> None:
        self.forms: list[dict[str, str]] = []
        self.expires_in, self.answer = expires_in, answer
        self.http = httpx.Client(transport=httpx.MockTransport(self.handle))

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.forms.append(dict(parse_qsl(request.content.decode())))
        if self.answer is not None:
            return self.answer()
        return httpx.Response(
            200, json={"access_token": f"ya29.{len(self.forms)}", "expires_in": self.expires_in}
        )


def test_the_assertion_is_an_rs256_jwt_of_the_account_for_the_scope() -> None:
    """iss, scope, aud, an hour's lifetime and the key id, signed with the account's key."""
    endpoint = TokenEndpoint()
    assert TokenCache(SCOPE).get(endpoint.http, account(), TOKEN_URI) == "ya29.1"
    (form,) = endpoint.forms
    assert form["grant_type"] == JWT_BEARER
    claims = jwt.decode(
        form["assertion"], generated().public_key_pem(), algorithms=["RS256"], audience=TOKEN_URI
    )
    assert (claims["iss"], claims["scope"], claims["exp"] - claims["iat"]) == (
        account().client_email, SCOPE, 3600,
    )  # fmt: skip
    assert jwt.get_unverified_header(form["assertion"])["kid"] == account().private_key_id


def test_a_token_is_kept_until_the_margin_before_expiry() -> None:
    """Held while it has more than ``margin`` seconds left; then replaced by a new one."""
    endpoint = TokenEndpoint(expires_in=3600)
    tokens = TokenCache(SCOPE, margin=300)
    assert [tokens.get(endpoint.http, account(), TOKEN_URI) for _ in range(3)] == ["ya29.1"] * 3
    short = TokenEndpoint(expires_in=200)  # already inside the margin: never reused
    assert [tokens.get(short.http, account(), "https://other/token") for _ in range(2)] == [
        "ya29.1",
        "ya29.2",
    ]
    tokens.clear()
    assert tokens.get(endpoint.http, account(), TOKEN_URI) == "ya29.2"


def test_renewed_when_time_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """An hour later, the held token is near expiry and a new one is fetched."""
    endpoint = TokenEndpoint()
    tokens = TokenCache(SCOPE, margin=120)
    assert tokens.get(endpoint.http, account(), TOKEN_URI) == "ya29.1"
    later = time.time() + 3600 - 100
    monkeypatch.setattr(time, "time", lambda: later)
    assert tokens.get(endpoint.http, account(), TOKEN_URI) == "ya29.2"


def test_drop_forgets_a_refused_token_only_if_still_held() -> None:
    """After an API's 401 the token is dropped; a stale drop leaves a newer token alone."""
    endpoint = TokenEndpoint()
    tokens = TokenCache(SCOPE)
    first = tokens.get(endpoint.http, account(), TOKEN_URI)
    tokens.drop(account(), TOKEN_URI, first)
    second = tokens.get(endpoint.http, account(), TOKEN_URI)
    tokens.drop(account(), TOKEN_URI, first)  # another thread's late drop of the old token
    assert (first, second, tokens.get(endpoint.http, account(), TOKEN_URI)) == ("ya29.1", "ya29.2", "ya29.2")


def failing(status: int, body: object) -> Callable[[], httpx.Response]:
    return lambda: httpx.Response(status, json=body)


def unreachable() -> httpx.Response:
    raise httpx.ConnectError("connection refused")


@pytest.mark.parametrize(
    ("answer", "kind", "code", "said"),
    [
        (failing(400, {"error": "invalid_grant", "error_description": "account not found"}),
         PermanentDeliveryError, "credentials_refused", "refused the service account's credentials: account not found"),
        (failing(200, {"token_type": "Bearer"}), PermanentDeliveryError, "credentials_refused", "credentials"),
        (failing(429, {"error": "rate_limit"}), TransientDeliveryError, "unavailable", "failed: rate_limit"),
        (failing(503, "down"), TransientDeliveryError, "unavailable", "failed"),
        (unreachable, TransientDeliveryError, "unavailable", r"cannot be reached \(connection refused\)"),
    ],
)  # fmt: skip
def test_refusals_become_delivery_errors_by_default(
    answer: Callable[[], httpx.Response], kind: type[DeliveryError], code: str, said: str
) -> None:
    """Credentials refused: permanent; rate limited, failing or unreachable: transient."""
    with pytest.raises(kind, match=said) as caught:
        TokenCache(SCOPE).get(TokenEndpoint(answer=answer).http, account(), TOKEN_URI)
    assert caught.value.reason_code == code


def test_a_plugin_maps_refusals_to_its_own_error() -> None:
    """``refusal`` gets the endpoint's status, OAuth error and reason; nothing is cached."""
    seen: list[TokenRefused] = []

    def refusal(refused: TokenRefused) -> Exception:
        seen.append(refused)
        return LookupError(f"{refused.status_code} {refused.error}")

    endpoint = TokenEndpoint(answer=failing(401, {"error": "invalid_client", "error_description": "gone"}))
    tokens = TokenCache(SCOPE, refusal=refusal)
    for _ in range(2):
        with pytest.raises(LookupError, match="401 invalid_client"):
            tokens.get(endpoint.http, account(), TOKEN_URI)
    assert len(endpoint.forms) == 2 and (seen[0].reason, seen[0].transient) == ("gone", False)


def test_tokens_from_the_fake_token_endpoint() -> None:
    """End to end: the cache's assertion passes the fake's checks; the fake tells who got a token."""
    app = fake_google()
    with TestClient(app) as client:
        token = TokenCache(SCOPE).get(client, account(), "http://testserver/token")
    assert token == "ya29.token-1" and app.state.issued == [account().client_email]
