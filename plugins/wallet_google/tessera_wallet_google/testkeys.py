"""TEST-ONLY credentials shaped like Google's, generated at run time (nothing secret is shipped).

- :func:`test_service_account`: a service-account key file (what a tenant downloads from Google Cloud),
  whose key only the sandbox (the fake Google) trusts; real Google refuses it.
- :class:`CallbackSigner`: Google's side of save/delete callbacks, a root key and an intermediate key
  signed by it, so the fake can send callbacks that :mod:`tessera_wallet_google.callbacks` verifies
  against :meth:`CallbackSigner.keys_document` (never against Google's real keys).

Used by the sandbox and the tests; never configure them for a real tenant. Key generation happens
once per process (RSA 2048 is slow).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from functools import cache

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tessera_google_auth.testkeys import GeneratedAccount, generate_account

from tessera_wallet_google.callbacks import PROTOCOL, SENDER_ID

PROJECT_ID = "tessera-sandbox"
CLIENT_EMAIL = "tessera-sandbox@tessera-sandbox.iam.gserviceaccount.com"
TOKEN_URI = "https://oauth2.googleapis.com/token"

_DAY_MS = 24 * 3600 * 1000
ROOT_KEY_LIFETIME_MS = 3650 * _DAY_MS  # Google's root keys last years
INTERMEDIATE_KEY_LIFETIME_MS = _DAY_MS  # intermediate keys are short-lived
MESSAGE_LIFETIME_MS = 3600 * 1000


@cache
def _service_account() -> GeneratedAccount:
    return generate_account(CLIENT_EMAIL, PROJECT_ID)


def test_service_account() -> dict[str, str]:
    """The test service-account key file as a dict (the same account throughout the process)."""
    # A copy: callers (the channel in sandbox mode) replace token_uri, which must not leak into the cache.
    return _service_account().key_file()


def service_account_public_key_pem() -> str:
    """The public key of :func:`test_service_account`, as SubjectPublicKeyInfo PEM."""
    return _service_account().public_key_pem()


class CallbackSigner:
    """Google's side of callbacks, for the fake: a root key, an intermediate key signed by it."""

    def __init__(self) -> None:
        self._root = ec.generate_private_key(ec.SECP256R1())
        self._intermediate = ec.generate_private_key(ec.SECP256R1())
        self.root_key_expiration_ms = _now_ms() + ROOT_KEY_LIFETIME_MS

    def keys_document(self) -> dict[str, list[dict[str, str]]]:
        """The root key as Google publishes its keys (``https://pay.google.com/gp/m/issuer/keys``)."""
        entry = {
            "keyValue": _spki_b64(self._root.public_key()),
            "protocolVersion": PROTOCOL,
            "keyExpiration": str(self.root_key_expiration_ms),
        }
        return {"keys": [entry]}

    def sign(
        self,
        issuer_id: str,
        class_id: str,
        object_id: str,
        event_type: str,
        *,
        nonce: str | None = None,
        exp_time_millis: int | None = None,
        key_expiration_ms: int | None = None,
        sender_id: str = SENDER_ID,
    ) -> bytes:
        """A callback body exactly as Google sends it, signed for ``issuer_id``.

        Defaults: a fresh UUID nonce, a message valid for an hour and an intermediate key valid for
        a day; past times make expired callbacks for tests.
        """
        now = _now_ms()
        signed_key = _compact(
            {
                "keyValue": _spki_b64(self._intermediate.public_key()),
                "keyExpiration": str(
                    now + INTERMEDIATE_KEY_LIFETIME_MS if key_expiration_ms is None else key_expiration_ms
                ),
            }
        )
        signed_message = _compact(
            {
                "classId": class_id,
                "objectId": object_id,
                "expTimeMillis": now + MESSAGE_LIFETIME_MS if exp_time_millis is None else exp_time_millis,
                "eventType": event_type,
                "nonce": str(uuid.uuid4()) if nonce is None else nonce,
            }
        )
        body = {
            "signature": _sign(self._intermediate, _lv(sender_id, issuer_id, PROTOCOL, signed_message)),
            "intermediateSigningKey": {
                "signedKey": signed_key,
                "signatures": [_sign(self._root, _lv(sender_id, PROTOCOL, signed_key))],
            },
            "protocolVersion": PROTOCOL,
            "signedMessage": signed_message,
        }
        return json.dumps(body).encode()


@cache
def test_signer() -> CallbackSigner:
    """The process-wide :class:`CallbackSigner` shared by the sandbox and the tests."""
    return CallbackSigner()


# Their names start with "test_": keep pytest from collecting them where a test module imports them.
test_service_account.__test__ = False  # type: ignore[attr-defined]
test_signer.__test__ = False  # type: ignore[attr-defined]


def _lv(*parts: str) -> bytes:
    # Google's signed-bytes layout, written independently of the verifier (4-byte LE length + UTF-8).
    return b"".join(len(data).to_bytes(4, "little") + data for data in (part.encode() for part in parts))


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> str:
    return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


def _spki_b64(key: ec.EllipticCurvePublicKey) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def _compact(value: dict[str, object]) -> str:
    return json.dumps(value, separators=(",", ":"))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
