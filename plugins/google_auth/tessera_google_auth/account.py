"""A Google service account from its key file, parsed once per distinct file.

Parsing an RSA key costs far more than signing with it, so the parsed account is cached by the
key file's text; every tenant with the same file shares it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)
from pydantic import SecretStr

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"


class ServiceAccountInvalid(ValueError):
    """The key file is not a usable Google service-account key (said plainly)."""


@dataclass(frozen=True)
class ServiceAccount:
    """A Google service account: who it is and its parsed private key."""

    client_email: str
    private_key_id: str
    token_uri: str
    key: RSAPrivateKey

    def public_key_pem(self) -> str:
        """The account's public key as SubjectPublicKeyInfo PEM (what a fake Google is told to trust)."""
        public = self.key.public_key()
        return public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


@lru_cache(maxsize=64)
def service_account(key_file: str) -> ServiceAccount:
    """The service account of a key file (JSON text), parsed once per distinct file."""
    try:
        info: Any = json.loads(key_file)
    except ValueError:
        raise ServiceAccountInvalid("the service account key file is not valid JSON") from None
    if not isinstance(info, dict) or not {"client_email", "private_key"} <= info.keys():
        raise ServiceAccountInvalid(
            "this JSON is not a service account key (needs client_email and private_key)"
        )
    try:
        key = load_pem_private_key(str(info["private_key"]).encode(), password=None)
    except (ValueError, TypeError):
        raise ServiceAccountInvalid(
            "the private_key of the service account key file cannot be read"
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise ServiceAccountInvalid("the private_key of the service account is not an RSA key")
    return ServiceAccount(
        client_email=str(info["client_email"]),
        private_key_id=str(info.get("private_key_id", "")),
        token_uri=str(info.get("token_uri") or GOOGLE_TOKEN_URI),
        key=key,
    )


def checked_key_file(value: SecretStr) -> SecretStr:
    """``value`` if it is a usable key file, else ``ValueError`` saying what to do (a config validator)."""
    try:
        service_account(value.get_secret_value())
    except ServiceAccountInvalid as exc:
        raise ValueError(f"Upload the service account key file: {exc}.") from None
    return value
