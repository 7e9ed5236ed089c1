"""Having a plugin's sandbox (a fake Google in maybe another process) trust a service account.

A tenant's sandbox account is generated wherever its config was saved (the demo's seeding, a
test), so the fake cannot know its key: the channel posts it to the fake's ``/_sandbox/accounts``
(see :func:`tessera_google_auth.fake.accounts_router`) before its first call, as adding the account
in Google's console would.
"""

from __future__ import annotations

import httpx

from tessera_google_auth.account import ServiceAccount

# (sandbox URL, client_email) pairs already introduced by this process; tests clear it.
introduced: set[tuple[str, str]] = set()


def introduce(sandbox_url: str, account: ServiceAccount) -> None:
    """Have the sandbox at ``sandbox_url`` trust ``account``, once per process.

    Errors are left to the token call that follows, which says what is wrong.
    """
    if (sandbox_url, account.client_email) in introduced:
        return
    try:
        answer = httpx.post(
            f"{sandbox_url.rstrip('/')}/_sandbox/accounts",
            json={"client_email": account.client_email, "public_key_pem": account.public_key_pem()},
            timeout=10.0,
        )
    except httpx.HTTPError:
        return
    if answer.status_code == 201:
        introduced.add((sandbox_url, account.client_email))
