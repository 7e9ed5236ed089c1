"""TEST-ONLY service accounts shaped like Google's, generated at run time (nothing secret is shipped).

Only a plugin's sandbox (its fake Google) trusts them; real Google refuses them. Each plugin keeps
its own account, made once per process (RSA 2048 is slow); never configure one for a real tenant.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tessera_google_auth.account import GOOGLE_TOKEN_URI


@dataclass(frozen=True)
class GeneratedAccount:
    """A generated service account: its key file (as Google issues one) and its private key."""

    info: dict[str, str]
    key: rsa.RSAPrivateKey

    def key_file(self) -> dict[str, str]:
        """The key file as a dict: a copy, so callers may change it without touching this one."""
        return dict(self.info)

    def public_key_pem(self) -> str:
        """The public key, as SubjectPublicKeyInfo PEM."""
        public = self.key.public_key()
        return public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()


def generate_account(client_email: str, project_id: str) -> GeneratedAccount:
    """A new service account with a fresh RSA 2048 key, its key file in Google's layout."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),  # Google's ids are 40 hex digits
        "private_key": pem.decode(),
        "client_email": client_email,
        "client_id": str(10**20 + secrets.randbelow(9 * 10**20)),  # 21 digits, like Google's
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": GOOGLE_TOKEN_URI,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/" + quote(client_email),
        "universe_domain": "googleapis.com",
    }
    return GeneratedAccount(info=info, key=key)
