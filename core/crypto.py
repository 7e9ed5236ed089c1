"""Encryption of secrets at rest (plugin config secrets, provider keys).

Values are sealed with Fernet (AES-128-CBC + HMAC-SHA256) under a key derived from the
installation's secret key, so a database dump alone reveals nothing.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.settings import get_settings

ENCRYPTED_MARK = "$enc"


class SecretDecryptionError(RuntimeError):
    """A stored secret cannot be opened: the secret key changed or the value was tampered with."""


@lru_cache(maxsize=4)
def _fernet(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"tessera-secrets", info=b"fernet").derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt(plaintext: str) -> str:
    """Seal a string; the result is safe to store."""
    return _fernet(get_settings().resolved_secret_key()).encrypt(plaintext.encode()).decode("ascii")


def decrypt(token: str) -> str:
    """Open a value sealed by :func:`encrypt`."""
    try:
        return _fernet(get_settings().resolved_secret_key()).decrypt(token.encode("ascii")).decode()
    except InvalidToken as exc:
        raise SecretDecryptionError(
            "A stored secret cannot be decrypted: was TESSERA_SECRET_KEY changed? Re-enter the secret."
        ) from exc


def seal(plaintext: str) -> dict[str, str]:
    """A JSON-storable envelope of an encrypted value."""
    return {ENCRYPTED_MARK: encrypt(plaintext)}


def is_sealed(value: object) -> bool:
    """True for an envelope made by :func:`seal`."""
    return isinstance(value, dict) and set(value) == {ENCRYPTED_MARK}


def unseal(envelope: dict[str, str]) -> str:
    """Open an envelope made by :func:`seal`."""
    return decrypt(envelope[ENCRYPTED_MARK])


def token_digest(token: str) -> str:
    """A stable digest for looking up high-entropy tokens without storing them."""
    return hashlib.sha256(token.encode()).hexdigest()
