"""Google's OAuth side as the plugins' fakes serve it, faithful in its checks and error shapes.

- :func:`verify_assertion`: the JWT bearer grant (RS256 signature against the trusted accounts,
  audience, lifetime, scope), refused with OAuth's error codes and Google's descriptions.
- :func:`token_response`: a ``POST /token`` request answered: Google's token answer or OAuth's error.
- :func:`accounts_router`: ``POST /_sandbox/accounts``, to trust an account whose key was made in
  another process (see :mod:`tessera_google_auth.introduce`).
- :func:`bearer` and the texts of the 401s Google's APIs answer.

The fake keeps its trusted accounts as a dict, ``client_email`` -> public key (PEM).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, MutableMapping
from urllib.parse import parse_qsl

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from tessera_google_auth.account import GOOGLE_TOKEN_URI
from tessera_google_auth.tokens import ASSERTION_LIFETIME, JWT_BEARER

TOKEN_PATH = "token"
TOKEN_LIFETIME = 3599  # seconds, what Google answers
CLOCK_SKEW = 30  # seconds of leeway on iat/exp, for clocks slightly apart
SHORT_LIVED = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
    "Check your iat and exp values in the JWT claim."
)
MISSING_CREDENTIAL = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
INVALID_CREDENTIAL = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
    "other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


class OAuthRefusal(Exception):
    """A refused token request: OAuth's ``error`` code and description."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error, self.description = error, description

    def response(self) -> JSONResponse:
        """The refusal in the token endpoint's error shape (RFC 6749 section 5.2)."""
        return JSONResponse({"error": self.error, "error_description": self.description}, status_code=400)


def mounted_token_uri(plugin_key: str) -> re.Pattern[str]:
    """The token URI a channel signs for behind the core's mount.

    The fake sees itself as ``http://sandbox/...`` while the channel signs for the public URL it
    was given, ``<public_url>/sandbox/<tenant>/<plugin_key>/token``.
    """
    return re.compile(rf"^https?://[^?#]+/sandbox/[^/?#]+/{re.escape(plugin_key)}/{TOKEN_PATH}$")


def verify_assertion(
    form: Mapping[str, str],
    trusted_keys: Mapping[str, str],
    *,
    scopes: Collection[str],
    own_uris: Collection[str],
    plugin_key: str,
) -> str:
    """The service account a token request proves to be, or :class:`OAuthRefusal`.

    ``scopes``: the assertion must ask for one of them. ``own_uris``: audiences accepted besides
    Google's token URI and the mounted one of ``plugin_key``.
    """
    if form.get("grant_type") != JWT_BEARER:
        raise OAuthRefusal("unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')}")
    assertion = form.get("assertion")
    if not assertion:
        raise OAuthRefusal("invalid_request", "Missing required parameter: assertion")
    try:
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise OAuthRefusal("invalid_grant", "Invalid JWT: the assertion is not a JWT.") from None
    account = unverified.get("iss")
    key = trusted_keys.get(account) if isinstance(account, str) else None
    if key is None:
        raise OAuthRefusal("invalid_grant", "Invalid grant: account not found")
    try:
        claims = jwt.decode(
            assertion, key, algorithms=["RS256"], leeway=CLOCK_SKEW,
            options={"require": ["iss", "aud", "iat", "exp"], "verify_aud": False},
        )  # fmt: skip
    except jwt.InvalidSignatureError:
        raise OAuthRefusal("invalid_grant", "Invalid JWT Signature.") from None
    except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
        raise OAuthRefusal("invalid_grant", SHORT_LIVED) from None
    except jwt.PyJWTError as exc:
        raise OAuthRefusal("invalid_grant", f"Invalid JWT: {exc}") from None
    audience = claims["aud"]
    if (
        audience != GOOGLE_TOKEN_URI
        and audience not in own_uris
        and not mounted_token_uri(plugin_key).match(str(audience))
    ):
        raise OAuthRefusal(
            "invalid_grant", f"Invalid JWT: Failed audience check. The expected value was {GOOGLE_TOKEN_URI}"
        )
    if not isinstance(claims["exp"], int | float) or claims["exp"] - claims["iat"] > ASSERTION_LIFETIME:
        raise OAuthRefusal("invalid_grant", SHORT_LIVED)
    scope = claims.get("scope")
    if not isinstance(scope, str) or not set(scopes) & set(scope.split()):
        raise OAuthRefusal("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
    return str(account)


async def token_response(
    request: Request,
    trusted_keys: Mapping[str, str],
    *,
    scopes: Collection[str],
    plugin_key: str,
    issue: Callable[[str], str],
) -> Response:
    """Google's answer to a ``POST /token``: ``issue(account)``'s access token, or OAuth's error."""
    form = dict(parse_qsl((await request.body()).decode("utf-8", errors="replace")))
    own = {str(request.url).split("?", 1)[0], f"{request.base_url}{TOKEN_PATH}"}
    try:
        account = verify_assertion(form, trusted_keys, scopes=scopes, own_uris=own, plugin_key=plugin_key)
    except OAuthRefusal as refusal:
        return refusal.response()
    return JSONResponse(
        {"access_token": issue(account), "expires_in": TOKEN_LIFETIME, "token_type": "Bearer"}
    )


def bearer(request: Request) -> str | None:
    """The value of ``Authorization: Bearer <value>``, if the request carries one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class AccountIn(BaseModel):
    """A service account to trust: its email and public key (PEM)."""

    client_email: str = Field(min_length=3, max_length=200)
    public_key_pem: str = Field(max_length=5000)


def accounts_router(trusted_keys: MutableMapping[str, str]) -> APIRouter:
    """``POST /_sandbox/accounts``: trust one more service account, as adding it in Google's console.

    A sandbox account generated in another process (the demo's seeding, a test) has another key
    than the fake's own; the channel posts it here first.
    """
    router = APIRouter()

    @router.post("/_sandbox/accounts", status_code=201)
    async def add_account(body: AccountIn) -> Response:
        """Trust this account's key for token requests (and whatever else the fake signs with it)."""
        try:
            key = load_pem_public_key(body.public_key_pem.encode())
        except ValueError:
            return JSONResponse({"error": "public_key_pem is not a PEM public key"}, status_code=400)
        if not isinstance(key, rsa.RSAPublicKey):
            return JSONResponse({"error": "service account keys are RSA keys"}, status_code=400)
        trusted_keys[body.client_email] = body.public_key_pem
        return Response(status_code=201)

    return router
