"""Google Wallet save/delete callbacks are verified as Google specifies ("ECv2SigningOnly").

Bodies are built here from the specification (an independent "Google" with its own keys), and also by
the plugin's test signer, which the sandbox uses; both must verify, and every defect must be refused
with a reason saying what is wrong.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from tessera_wallet_google import testkeys
from tessera_wallet_google.callbacks import (
    KEYS_PATH,
    PROTOCOL,
    SENDER_ID,
    Callback,
    CallbackRefused,
    RootKey,
    parse_root_keys,
    verify_callback,
)

ISSUER = "3388000000022222222"
CLASS_ID = f"{ISSUER}.loyalty_class"
OBJECT_ID = f"{ISSUER}.member-42"
HOUR_MS = 3600 * 1000


def now_ms() -> int:
    return int(time.time() * 1000)


def lv(*parts: str) -> bytes:
    """Length-value as Google defines it: 4-byte little-endian length, then the UTF-8 bytes."""
    out = b""
    for part in parts:
        data = part.encode("utf-8")
        out += len(data).to_bytes(4, "little") + data
    return out


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def spki(key: ec.EllipticCurvePrivateKey) -> str:
    return b64(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> str:
    return b64(key.sign(data, ec.ECDSA(hashes.SHA256())))


@dataclass
class Google:
    """An independent sender following the spec: a root key and an intermediate key."""

    root: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    intermediate: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def root_keys(self, expiration: int | None = None) -> list[RootKey]:
        expiration = now_ms() + HOUR_MS if expiration is None else expiration
        return [RootKey(key_value=spki(self.root), protocol_version=PROTOCOL, key_expiration=expiration)]

    def body(
        self,
        *,
        issuer: str = ISSUER,
        message: dict[str, Any] | None = None,
        key_expiration: Any = None,
        key_protocol: str = PROTOCOL,
        sender: str = SENDER_ID,
    ) -> dict[str, Any]:
        """A callback body as a dict (to tamper with), signed over the given parts."""
        fields: dict[str, Any] = {
            "classId": CLASS_ID,
            "objectId": OBJECT_ID,
            "expTimeMillis": now_ms() + HOUR_MS,
            "eventType": "save",
            "nonce": "nonce-1",
        }
        fields.update(message or {})
        fields = {name: value for name, value in fields.items() if value is not None}
        signed_message = json.dumps(fields)
        expiration = str(now_ms() + HOUR_MS) if key_expiration is None else key_expiration
        signed_key = json.dumps({"keyValue": spki(self.intermediate), "keyExpiration": expiration})
        return {
            "signature": sign(self.intermediate, lv(sender, issuer, PROTOCOL, signed_message)),
            "intermediateSigningKey": {
                "signedKey": signed_key,
                "signatures": [sign(self.root, lv(sender, key_protocol, signed_key))],
            },
            "protocolVersion": PROTOCOL,
            "signedMessage": signed_message,
        }


@pytest.fixture(scope="module")
def google() -> Google:
    return Google()


def verify(body: dict[str, Any] | bytes, keys: list[RootKey], **kwargs: Any) -> Callback:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return verify_callback(raw, issuer_id=kwargs.pop("issuer_id", ISSUER), root_keys=keys, **kwargs)


# --- accepted ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", ["save", "del"])
def test_signed_callback_verifies_to_its_event(google: Google, event_type: str) -> None:
    """A correctly signed save / del gives back exactly the signed event."""
    expires = now_ms() + HOUR_MS
    body = google.body(
        message={"eventType": event_type, "nonce": f"n-{event_type}", "expTimeMillis": expires}
    )
    assert verify(body, google.root_keys()) == Callback(
        class_id=CLASS_ID,
        object_id=OBJECT_ID,
        event_type=cast(Literal["save", "del"], event_type),
        nonce=f"n-{event_type}",
        exp_time_millis=expires,
    )


@pytest.mark.parametrize("event_type", ["save", "del"])
def test_test_signer_callbacks_verify_against_its_keys_document(event_type: str) -> None:
    """The sandbox's signer produces bodies the verifier accepts with the signer's published keys."""
    signer = testkeys.test_signer()
    keys = parse_root_keys(json.dumps(signer.keys_document()))
    body = signer.sign(
        ISSUER, CLASS_ID, OBJECT_ID, event_type, nonce="abc", exp_time_millis=now_ms() + HOUR_MS
    )
    callback = verify_callback(body, issuer_id=ISSUER, root_keys=keys)
    assert (callback.class_id, callback.object_id, callback.event_type, callback.nonce) == (
        CLASS_ID,
        OBJECT_ID,
        event_type,
        "abc",
    )
    sent = json.loads(body)
    assert set(sent) == {"signature", "intermediateSigningKey", "protocolVersion", "signedMessage"}
    assert isinstance(sent["signedMessage"], str) and isinstance(
        sent["intermediateSigningKey"]["signedKey"], str
    )


def test_one_good_signature_among_intermediate_signatures_is_enough(google: Google) -> None:
    """Google may list several signatures of the intermediate key (root key rotation)."""
    body = google.body()
    other = Google()
    good = body["intermediateSigningKey"]["signatures"][0]
    body["intermediateSigningKey"]["signatures"] = [sign(other.root, b"something else"), good]
    assert verify(body, google.root_keys()).object_id == OBJECT_ID


def test_any_of_several_root_keys_may_have_signed(google: Google) -> None:
    keys = Google().root_keys() + google.root_keys()
    assert verify(google.body(), keys).event_type == "save"


def test_sender_id_can_be_overridden_and_is_bound_by_the_signature() -> None:
    """A body signed for another sender id is refused by default and accepted when that id is configured."""
    signer = testkeys.test_signer()
    keys = parse_root_keys(json.dumps(signer.keys_document()))
    body = signer.sign(ISSUER, CLASS_ID, OBJECT_ID, "save", sender_id="GoogleWalletPasses")
    with pytest.raises(CallbackRefused, match="not signed by any of Google's root keys"):
        verify_callback(body, issuer_id=ISSUER, root_keys=keys)
    assert verify_callback(body, issuer_id=ISSUER, root_keys=keys, sender_id="GoogleWalletPasses").nonce


# --- refused: signatures and expiry ---------------------------------------------------------------------


def test_tampered_signed_message_is_refused(google: Google) -> None:
    body = google.body()
    body["signedMessage"] = body["signedMessage"].replace(OBJECT_ID, f"{ISSUER}.someone-else")
    with pytest.raises(CallbackRefused, match="message signature does not verify"):
        verify(body, google.root_keys())


def test_tampered_signed_key_is_refused(google: Google) -> None:
    body = google.body()
    body["intermediateSigningKey"]["signedKey"] = json.dumps(
        {"keyValue": spki(Google().intermediate), "keyExpiration": str(now_ms() + HOUR_MS)}
    )
    with pytest.raises(
        CallbackRefused, match="intermediate signing key is not signed by any of Google's root keys"
    ):
        verify(body, google.root_keys())


def test_intermediate_key_signed_by_another_root_key_is_refused(google: Google) -> None:
    impostor = Google()
    with pytest.raises(CallbackRefused, match="not signed by any of Google's root keys"):
        verify(impostor.body(), google.root_keys())


def test_intermediate_key_signed_for_another_protocol_is_refused(google: Google) -> None:
    with pytest.raises(CallbackRefused, match=f"not signed by any .*protocol {PROTOCOL}"):
        verify(google.body(key_protocol="ECv2"), google.root_keys())


def test_expired_intermediate_key_is_refused(google: Google) -> None:
    body = google.body(key_expiration=str(now_ms() - 1000))
    with pytest.raises(CallbackRefused, match="intermediate signing key expired at"):
        verify(body, google.root_keys())


def test_expired_message_is_refused(google: Google) -> None:
    body = google.body(message={"expTimeMillis": now_ms() - 1000})
    with pytest.raises(CallbackRefused, match="callback message expired at"):
        verify(body, google.root_keys())


def test_clock_is_taken_from_now_ms(google: Google) -> None:
    """An accepted body is refused when checked after its expiry."""
    expires = now_ms() + HOUR_MS
    # Keys outlive the message, so only the message's own expiry can refuse it.
    body = google.body(message={"expTimeMillis": expires}, key_expiration=str(expires + HOUR_MS))
    keys = google.root_keys(expiration=expires + HOUR_MS)
    assert verify(body, keys, now_ms=expires - 1).exp_time_millis == expires
    with pytest.raises(CallbackRefused, match="callback message expired"):
        verify(body, keys, now_ms=expires)


def test_callback_for_another_issuer_is_refused(google: Google) -> None:
    with pytest.raises(CallbackRefused, match="does not verify for issuer 3388000000099999999"):
        verify(google.body(), google.root_keys(), issuer_id="3388000000099999999")


def test_expired_or_foreign_root_keys_are_not_used(google: Google) -> None:
    expired = [RootKey(spki(google.root), PROTOCOL, now_ms() - 1)]
    with pytest.raises(CallbackRefused, match="No unexpired Google root key"):
        verify(google.body(), expired)
    ecv1 = [RootKey(spki(google.root), "ECv1", None)]
    with pytest.raises(CallbackRefused, match="No unexpired Google root key"):
        verify(google.body(), ecv1)


def test_unknown_event_type_is_refused(google: Google) -> None:
    with pytest.raises(CallbackRefused, match="Unknown eventType 'update'"):
        verify(google.body(message={"eventType": "update"}), google.root_keys())


# --- refused: shape ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'"text"', "not a JSON object"),
    ],
)
def test_malformed_body_is_refused(google: Google, raw: bytes, reason: str) -> None:
    with pytest.raises(CallbackRefused, match=reason):
        verify(raw, google.root_keys())


@pytest.mark.parametrize("name", ["signature", "intermediateSigningKey", "protocolVersion", "signedMessage"])
def test_missing_top_level_field_is_refused(google: Google, name: str) -> None:
    body = google.body()
    del body[name]
    with pytest.raises(CallbackRefused, match=f"lacks {name}"):
        verify(body, google.root_keys())


@pytest.mark.parametrize("name", ["signedKey", "signatures"])
def test_missing_intermediate_key_field_is_refused(google: Google, name: str) -> None:
    body = google.body()
    del body["intermediateSigningKey"][name]
    with pytest.raises(CallbackRefused, match=f"intermediateSigningKey lacks {name}"):
        verify(body, google.root_keys())


@pytest.mark.parametrize("name", ["classId", "objectId", "expTimeMillis", "eventType", "nonce"])
def test_missing_message_field_is_refused(google: Google, name: str) -> None:
    """Even correctly signed, a message without one of its fields is refused."""
    with pytest.raises(CallbackRefused, match=f"signedMessage lacks {name}"):
        verify(google.body(message={name: None}), google.root_keys())


def test_intermediate_key_without_expiration_is_refused(google: Google) -> None:
    body = google.body()
    signed_key = json.dumps({"keyValue": spki(google.intermediate)})
    body["intermediateSigningKey"] = {
        "signedKey": signed_key,
        "signatures": [sign(google.root, lv(SENDER_ID, PROTOCOL, signed_key))],
    }
    with pytest.raises(CallbackRefused, match="lacks keyExpiration"):
        verify(body, google.root_keys())


def test_unexpected_extra_field_is_refused(google: Google) -> None:
    body = google.body() | {"extra": 1}
    with pytest.raises(CallbackRefused, match="unexpected fields: extra"):
        verify(body, google.root_keys())


def test_non_numeric_expiry_is_refused(google: Google) -> None:
    with pytest.raises(CallbackRefused, match="expTimeMillis is not a time in milliseconds"):
        verify(google.body(message={"expTimeMillis": "tomorrow"}), google.root_keys())


def test_message_signature_not_base64_is_refused(google: Google) -> None:
    body = google.body() | {"signature": "not base64!"}
    with pytest.raises(CallbackRefused, match="The signature is not valid base64"):
        verify(body, google.root_keys())


def test_intermediate_signature_not_base64_is_refused(google: Google) -> None:
    body = google.body()
    body["intermediateSigningKey"]["signatures"] = ["%%%"]
    with pytest.raises(CallbackRefused, match=r"signatures\[0\] is not valid base64"):
        verify(body, google.root_keys())


def test_signature_of_wrong_type_is_refused(google: Google) -> None:
    body = google.body() | {"signature": 12}
    with pytest.raises(CallbackRefused, match="not a base64 string"):
        verify(body, google.root_keys())


@pytest.mark.parametrize("protocol", ["ECv1", "ECv2", "ecv2signingonly", None])
def test_unknown_protocol_version_is_refused(google: Google, protocol: str | None) -> None:
    body = google.body() | {"protocolVersion": protocol}
    with pytest.raises(CallbackRefused, match="Unsupported protocolVersion"):
        verify(body, google.root_keys())


# --- Google's keys document ---------------------------------------------------------------------------


def test_keys_path_is_googles() -> None:
    assert "https://pay.google.com" + KEYS_PATH == "https://pay.google.com/gp/m/issuer/keys"


def test_parse_root_keys_keeps_only_live_ecv2_signing_only_keys(google: Google) -> None:
    """Expired keys, keys of other protocols and keys without expiry are dropped."""
    live, expired, other, undated = (Google().root for _ in range(4))
    future = now_ms() + HOUR_MS
    document = {
        "keys": [
            {"keyValue": spki(other), "protocolVersion": "ECv1"},
            {"keyValue": spki(expired), "protocolVersion": PROTOCOL, "keyExpiration": str(now_ms() - 1)},
            {"keyValue": spki(live), "protocolVersion": PROTOCOL, "keyExpiration": str(future)},
            {"keyValue": spki(undated), "protocolVersion": PROTOCOL},
        ]
    }
    expected = [RootKey(key_value=spki(live), protocol_version=PROTOCOL, key_expiration=future)]
    assert parse_root_keys(json.dumps(document)) == expected
    assert parse_root_keys(json.dumps(document).encode()) == expected
    assert parse_root_keys(json.dumps(document), now_ms=future) == []


def rsa_spki() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return b64(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ("{", "not valid JSON"),
        ("[]", "not a JSON object"),
        ("{}", 'no "keys" list'),
        ('{"keys": {}}', 'no "keys" list'),
        ('{"keys": [1]}', "key #1 of the Google keys document is not a JSON object"),
        ('{"keys": [{"keyValue": "AAAA"}]}', "lacks protocolVersion"),
        ('{"keys": [{"protocolVersion": "ECv2SigningOnly", "keyExpiration": "1"}]}', "lacks keyValue"),
        ('{"keys": [{"keyValue": "!!", "protocolVersion": "ECv2SigningOnly"}]}', "not valid base64"),
        ('{"keys": [{"keyValue": "AAAA", "protocolVersion": "ECv2SigningOnly"}]}', "not a DER public key"),
    ],
)
def test_parse_root_keys_refuses_malformed_documents(document: str, reason: str) -> None:
    with pytest.raises(CallbackRefused, match=reason):
        parse_root_keys(document)


def test_parse_root_keys_refuses_non_p256_keys_and_bad_expiry(google: Google) -> None:
    with pytest.raises(CallbackRefused, match="not an ECDSA P-256 key"):
        parse_root_keys(json.dumps({"keys": [{"keyValue": rsa_spki(), "protocolVersion": PROTOCOL}]}))
    bad_expiry = {"keyValue": spki(google.root), "protocolVersion": PROTOCOL, "keyExpiration": "soon"}
    with pytest.raises(CallbackRefused, match="not a time in milliseconds"):
        parse_root_keys(json.dumps({"keys": [bad_expiry]}))


# --- test credentials ----------------------------------------------------------------------------------


def test_test_service_account_is_a_service_account_key_file() -> None:
    info = testkeys.test_service_account()
    assert info["type"] == "service_account"
    assert info["client_email"] == "tessera-sandbox@tessera-sandbox.iam.gserviceaccount.com"
    assert info["project_id"] == "tessera-sandbox"
    assert info["token_uri"] == "https://oauth2.googleapis.com/token"
    assert len(info["private_key_id"]) == 40 and int(info["private_key_id"], 16) >= 0
    assert info["client_id"].isdigit()
    assert info["private_key"].startswith("-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, as Google issues
    assert json.loads(json.dumps(info)) == info  # a JSON key file, as a tenant would paste it


def test_test_service_account_key_matches_its_public_key() -> None:
    """The private key signs RS256 data that the published public key verifies."""
    info = testkeys.test_service_account()
    private = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 2048
    public = serialization.load_pem_public_key(testkeys.service_account_public_key_pem().encode())
    assert isinstance(public, rsa.RSAPublicKey)
    signature = private.sign(b"header.claims", padding.PKCS1v15(), hashes.SHA256())
    public.verify(signature, b"header.claims", padding.PKCS1v15(), hashes.SHA256())
    assert public.public_numbers() == private.public_key().public_numbers()


def test_test_credentials_are_made_once_per_process() -> None:
    first = testkeys.test_service_account()
    first["token_uri"] = "http://127.0.0.1/sandbox/token"  # what the channel does in sandbox mode
    second = testkeys.test_service_account()
    assert second["token_uri"] == "https://oauth2.googleapis.com/token"
    assert (second["private_key_id"], second["private_key"]) == (
        first["private_key_id"],
        first["private_key"],
    )
    assert testkeys.test_signer() is testkeys.test_signer()
    document = testkeys.test_signer().keys_document()
    assert [key["protocolVersion"] for key in document["keys"]] == [PROTOCOL]
    assert int(document["keys"][0]["keyExpiration"]) > now_ms()
