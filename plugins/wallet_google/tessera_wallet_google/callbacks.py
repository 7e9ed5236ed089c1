"""Verification of Google Wallet's save/delete callbacks (Google Pay's "ECv2SigningOnly" scheme).

When a user saves or deletes a pass of a class whose ``callbackOptions.url`` is set, Google POSTs::

    {"signature": <b64 DER ECDSA>,
     "intermediateSigningKey": {"signedKey": "<JSON text {keyValue, keyExpiration}>",
                                "signatures": [<b64 DER ECDSA>, ...]},
     "protocolVersion": "ECv2SigningOnly",
     "signedMessage": "<JSON text {classId, objectId, expTimeMillis, eventType, nonce}>"}

Google signs a short-lived intermediate key with one of its long-lived root keys (published at
``https://pay.google.com`` + :data:`KEYS_PATH`), and the message with the intermediate key, bound to the
recipient (the issuer id). :func:`verify_callback` checks that chain as Tink's
``PaymentMethodTokenRecipient`` does (Google's recommended verifier) and returns the event.

Not done here: Google delivers callbacks at least once and retries, so the caller must de-duplicate
on :attr:`Callback.nonce` (e.g. remember nonces until :attr:`Callback.exp_time_millis`).
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SENDER_ID = "GooglePayPasses"
PROTOCOL = "ECv2SigningOnly"
KEYS_PATH = "/gp/m/issuer/keys"  # where Google publishes its root signing keys (https://pay.google.com/gp/m/issuer/keys)
EVENT_TYPES: tuple[str, ...] = ("save", "del")

_BODY_FIELDS = frozenset({"protocolVersion", "signature", "signedMessage", "intermediateSigningKey"})
_INTERMEDIATE_FIELDS = frozenset({"signedKey", "signatures"})


@dataclass(frozen=True)
class RootKey:
    """One of Google's root signing keys, as listed in its keys document."""

    key_value: str  # base64 DER SubjectPublicKeyInfo of an ECDSA P-256 key
    protocol_version: str
    key_expiration: int | None  # epoch milliseconds; None = no expiry (only for keys built by hand)


@dataclass(frozen=True)
class Callback:
    """A verified save or delete of one pass object. ``nonce`` identifies the delivery (retries repeat it)."""

    class_id: str
    object_id: str
    event_type: Literal["save", "del"]
    nonce: str
    exp_time_millis: int


class CallbackRefused(ValueError):
    """Why a callback was not accepted (said plainly)."""


def parse_root_keys(document: str | bytes, *, now_ms: int | None = None) -> list[RootKey]:
    """Google's root keys for ECv2SigningOnly from its keys document ``{"keys": [...]}``.

    Keys of other protocols, expired keys and keys without ``keyExpiration`` (required for this
    protocol) are left out; the result may be empty. A malformed document raises :class:`CallbackRefused`.
    """
    now = _now_ms() if now_ms is None else now_ms
    parsed = _json_object(document, "Google keys document")
    entries = parsed.get("keys")
    if not isinstance(entries, list):
        raise CallbackRefused('The Google keys document has no "keys" list.')
    keys: list[RootKey] = []
    for index, entry in enumerate(entries):
        what = f"key #{index + 1} of the Google keys document"
        if not isinstance(entry, dict):
            raise CallbackRefused(f"The {what} is not a JSON object.")
        protocol = _required_string(entry, "protocolVersion", what)
        if protocol != PROTOCOL:
            continue  # the document also lists keys of Google Pay's other protocols (ECv1, ECv2)
        key_value = _required_string(entry, "keyValue", what)
        _ec_p256_key(key_value, what)  # refuse an unusable key now rather than at each callback
        if "keyExpiration" not in entry:
            continue  # Tink ignores such keys: an expiry is mandatory from ECv2 on
        expiration = _millis(entry["keyExpiration"], f"keyExpiration of {what}")
        if expiration <= now:
            continue
        keys.append(RootKey(key_value=key_value, protocol_version=protocol, key_expiration=expiration))
    return keys


def verify_callback(
    body: bytes,
    *,
    issuer_id: str,
    root_keys: list[RootKey],
    now_ms: int | None = None,
    sender_id: str = SENDER_ID,
) -> Callback:
    """The event of a callback body, once its signatures, recipient and expiry check out.

    ``issuer_id`` is the recipient the message must be signed for; ``root_keys`` come from
    :func:`parse_root_keys`; ``now_ms`` (epoch ms) defaults to the clock; ``sender_id`` is Google's
    constant (some newer Google pages name it ``GoogleWalletPasses``, hence overridable). Raises
    :class:`CallbackRefused` saying why otherwise. Replays within the expiry are not detected:
    de-duplicate on the returned ``nonce``.
    """
    now = _now_ms() if now_ms is None else now_ms
    if not issuer_id:
        raise CallbackRefused("No issuer id is configured to check the callback's recipient against.")
    message = _json_object(body, "callback body")
    missing = sorted(_BODY_FIELDS - message.keys())
    if missing:
        raise CallbackRefused(f"The callback body lacks {', '.join(missing)}.")
    extra = sorted(message.keys() - _BODY_FIELDS)
    if extra:  # Tink accepts exactly these four fields; anything else is not Google's format
        raise CallbackRefused(f"The callback body has unexpected fields: {', '.join(extra)}.")
    protocol = message["protocolVersion"]
    if protocol != PROTOCOL:
        raise CallbackRefused(f"Unsupported protocolVersion {protocol!r}: only {PROTOCOL} is accepted.")

    intermediate_key = _verified_intermediate_key(
        message["intermediateSigningKey"], root_keys, now, sender_id
    )

    signed_message = message["signedMessage"]
    if not isinstance(signed_message, str):
        raise CallbackRefused("The signedMessage is not a JSON string.")
    signature = _b64(message["signature"], "signature")
    if not _verifies(intermediate_key, signature, _lv(sender_id, issuer_id, PROTOCOL, signed_message)):
        raise CallbackRefused(
            f"The message signature does not verify for issuer {issuer_id}: "
            "the message was altered, or was sent for another issuer."
        )
    return _callback(signed_message, now)


def _verified_intermediate_key(
    value: Any, root_keys: list[RootKey], now: int, sender_id: str
) -> ec.EllipticCurvePublicKey:
    """The intermediate signing key, once signed by a live root key and not expired."""
    if not isinstance(value, dict):
        raise CallbackRefused("The intermediateSigningKey is not a JSON object.")
    missing = sorted(_INTERMEDIATE_FIELDS - value.keys())
    if missing:
        raise CallbackRefused(f"The intermediateSigningKey lacks {', '.join(missing)}.")
    extra = sorted(value.keys() - _INTERMEDIATE_FIELDS)
    if extra:
        raise CallbackRefused(f"The intermediateSigningKey has unexpected fields: {', '.join(extra)}.")
    signed_key = value["signedKey"]
    if not isinstance(signed_key, str):
        raise CallbackRefused("The intermediateSigningKey.signedKey is not a JSON string.")
    raw_signatures = value["signatures"]
    if not isinstance(raw_signatures, list) or not raw_signatures:
        raise CallbackRefused("The intermediateSigningKey.signatures is not a non-empty list.")
    signatures = [
        _b64(item, f"intermediateSigningKey.signatures[{index}]") for index, item in enumerate(raw_signatures)
    ]

    live_roots = [
        _ec_p256_key(key.key_value, "a Google root key")
        for key in root_keys
        if key.protocol_version == PROTOCOL and (key.key_expiration is None or key.key_expiration > now)
    ]
    if not live_roots:
        raise CallbackRefused(f"No unexpired Google root key for {PROTOCOL} is available to verify with.")
    # The signature binds the protocol too: a key certified for another Google Pay protocol is refused.
    signed_bytes = _lv(sender_id, PROTOCOL, signed_key)
    if not any(_verifies(root, sig, signed_bytes) for root in live_roots for sig in signatures):
        raise CallbackRefused(
            f"The intermediate signing key is not signed by any of Google's root keys "
            f"(for sender {sender_id}, protocol {PROTOCOL})."
        )

    key_info = _json_object(signed_key, "intermediateSigningKey.signedKey")
    key_value = _required_string(key_info, "keyValue", "intermediateSigningKey.signedKey")
    if "keyExpiration" not in key_info:
        raise CallbackRefused("The intermediateSigningKey.signedKey lacks keyExpiration.")
    expiration = _millis(key_info["keyExpiration"], "intermediateSigningKey.signedKey.keyExpiration")
    if expiration <= now:
        raise CallbackRefused(f"The intermediate signing key expired at {_iso(expiration)}.")
    return _ec_p256_key(key_value, "the intermediate signing key")


def _callback(signed_message: str, now: int) -> Callback:
    """The event in a verified signedMessage, refused when expired or incomplete."""
    what = "signedMessage"
    fields = _json_object(signed_message, what)
    class_id = _required_string(fields, "classId", what)
    object_id = _required_string(fields, "objectId", what)
    event_type = _required_string(fields, "eventType", what)
    nonce = _required_string(fields, "nonce", what)
    if "expTimeMillis" not in fields:
        raise CallbackRefused("The signedMessage lacks expTimeMillis.")
    exp_time = _millis(fields["expTimeMillis"], "signedMessage.expTimeMillis")
    if exp_time <= now:
        raise CallbackRefused(f"The callback message expired at {_iso(exp_time)}.")
    if event_type not in EVENT_TYPES:
        raise CallbackRefused(f"Unknown eventType {event_type!r} (expected 'save' or 'del').")
    return Callback(
        class_id=class_id,
        object_id=object_id,
        event_type=cast(Literal["save", "del"], event_type),
        nonce=nonce,
        exp_time_millis=exp_time,
    )


def _lv(*parts: str) -> bytes:
    """Google's signed-bytes layout: each part as a 4-byte little-endian length, then its UTF-8 bytes."""
    out = bytearray()
    for part in parts:
        data = part.encode("utf-8")
        out += struct.pack("<I", len(data)) + data
    return bytes(out)


def _verifies(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` (DER) is a valid ECDSA-SHA256 signature of ``data`` by ``key``."""
    try:
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _ec_p256_key(b64_der: str, what: str) -> ec.EllipticCurvePublicKey:
    """An ECDSA P-256 public key from base64 DER SubjectPublicKeyInfo."""
    der = _b64(b64_der, f"keyValue of {what}")
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CallbackRefused(f"The keyValue of {what} is not a DER public key.") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise CallbackRefused(f"The keyValue of {what} is not an ECDSA P-256 key.")
    return key


def _b64(value: Any, what: str) -> bytes:
    """Standard base64 (with padding, as Google sends it) decoded; refused when not base64."""
    if not isinstance(value, str) or not value:
        raise CallbackRefused(f"The {what} is not a base64 string.")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CallbackRefused(f"The {what} is not valid base64.") from exc


def _json_object(text: str | bytes, what: str) -> dict[str, Any]:
    """A JSON object parsed from text; anything else is refused."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CallbackRefused(f"The {what} is not valid JSON.") from exc
    if not isinstance(value, dict):
        raise CallbackRefused(f"The {what} is not a JSON object.")
    return value


def _required_string(fields: dict[str, Any], name: str, what: str) -> str:
    """A non-empty string field of a JSON object."""
    value = fields.get(name)
    if value is None:
        raise CallbackRefused(f"The {what} lacks {name}.")
    if not isinstance(value, str) or not value:
        raise CallbackRefused(f"The {name} of the {what} is not a non-empty string.")
    return value


def _millis(value: Any, what: str) -> int:
    """Epoch milliseconds given as a decimal string (Google's usual form) or a JSON integer."""
    # bool is an int in Python: refuse it explicitly.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    # Bounded length: int() refuses very long digit strings, and no real time needs over 19 digits.
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    raise CallbackRefused(f"The {what} is not a time in milliseconds: {value!r}.")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _iso(millis: int) -> str:
    """A time in epoch milliseconds as readable UTC, for refusal messages."""
    try:
        return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return f"{millis} ms"
