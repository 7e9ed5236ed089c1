"""Helpers of the tessera-google-auth tests: one generated account, a fake token endpoint app."""

from __future__ import annotations

import json
from functools import cache

from fastapi import FastAPI, Request
from fastapi.responses import Response
from tessera_google_auth import ServiceAccount, service_account
from tessera_google_auth.fake import accounts_router, token_response
from tessera_google_auth.testkeys import GeneratedAccount, generate_account

SCOPE = "https://www.googleapis.com/auth/example"
PLUGIN_KEY = "example"


@cache
def generated() -> GeneratedAccount:
    """The test account, made once per process (RSA 2048 is slow)."""
    return generate_account("tester@example.iam.gserviceaccount.com", "example-project")


def account() -> ServiceAccount:
    """The test account, parsed from its key file."""
    return service_account(json.dumps(generated().key_file()))


def fake_google(trusted: dict[str, str] | None = None) -> FastAPI:
    """A fake with Google's token endpoint and the accounts endpoint; ``app.state.issued`` lists who got tokens."""
    keys = {generated().info["client_email"]: generated().public_key_pem()} if trusted is None else trusted
    app = FastAPI()
    app.state.keys = keys
    app.state.issued = []

    def issue(who: str) -> str:
        app.state.issued.append(who)
        return f"ya29.token-{len(app.state.issued)}"

    @app.post("/token")
    async def token(request: Request) -> Response:
        return await token_response(request, keys, scopes={SCOPE}, plugin_key=PLUGIN_KEY, issue=issue)

    app.include_router(accounts_router(keys))
    return app
