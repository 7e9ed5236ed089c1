"""TEST-ONLY service account shaped like Google's, generated at run time (nothing secret is shipped).

Only the sandbox (the fake FCM) trusts it; real Google refuses it. The key is generated once per
process (RSA 2048 is slow). Never configure it for a real tenant.
"""

from __future__ import annotations

from functools import cache

from tessera_google_auth.testkeys import GeneratedAccount, generate_account

PROJECT_ID = "tessera-sandbox"
CLIENT_EMAIL = "firebase-adminsdk@tessera-sandbox.iam.gserviceaccount.com"
TOKEN_URI = "https://oauth2.googleapis.com/token"


@cache
def _account() -> GeneratedAccount:
    return generate_account(CLIENT_EMAIL, PROJECT_ID)


def test_service_account() -> dict[str, str]:
    """The test service-account key file as a dict (the same account throughout the process)."""
    return _account().key_file()  # a copy: callers may change it without touching the cached one


def public_key_pem() -> str:
    """The public key of :func:`test_service_account`, as SubjectPublicKeyInfo PEM."""
    return _account().public_key_pem()


# Its name starts with "test_": keep pytest from collecting it where a test module imports it.
test_service_account.__test__ = False  # type: ignore[attr-defined]
