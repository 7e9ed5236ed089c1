"""TEST-ONLY service account shaped like Google's, generated at run time (nothing secret is shipped).

Only the sandbox (the fake FCM) trusts it; real Google refuses it. The key is generated once per
process (RSA 2048 is slow). Never configure it for a real tenant.
"""

from __future__ import annotations

import secrets
from functools import cache
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PROJECT_ID = "tessera-sandbox"
CLIENT_EMAIL = "firebase-adminsdk@tessera-sandbox.iam.gserviceaccount.com"
TOKEN_URI = "https://oauth2.googleapis.com/token"


@cache
def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def _info() -> dict[str, str]:
    pem = _key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "type": "service_account",
        "project_id": PROJECT_ID,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem.decode(),
        "client_email": CLIENT_EMAIL,
        "client_id": str(10**20 + secrets.randbelow(9 * 10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": TOKEN_URI,
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/" + quote(CLIENT_EMAIL),
        "universe_domain": "googleapis.com",
    }


def test_service_account() -> dict[str, str]:
    """The test service-account key file as a dict (the same account throughout the process)."""
    return dict(_info())  # a copy: callers may change it without touching the cached one


def public_key_pem() -> str:
    """The public key of :func:`test_service_account`, as SubjectPublicKeyInfo PEM."""
    public = _key().public_key()
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


# Its name starts with "test_": keep pytest from collecting it where a test module imports it.
test_service_account.__test__ = False  # type: ignore[attr-defined]
