"""The service account of a key file: parsed once, refused plainly when unusable."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google_auth_support import account, generated
from pydantic import SecretStr
from tessera_google_auth import GOOGLE_TOKEN_URI, ServiceAccountInvalid, checked_key_file, service_account


def key_file(**changes: object) -> str:
    """The test key file as JSON text, with ``changes`` to its fields (None drops one)."""
    info: dict[str, object] = {**generated().key_file(), **changes}
    return json.dumps({name: value for name, value in info.items() if value is not None})


def test_a_key_file_gives_the_account_parsed_once() -> None:
    """Email, key id, token URI and the RSA key; the same text gives the same parsed account."""
    parsed = account()
    assert parsed.client_email == "tester@example.iam.gserviceaccount.com"
    assert parsed.private_key_id == generated().info["private_key_id"]
    assert parsed.token_uri == GOOGLE_TOKEN_URI
    assert parsed.public_key_pem() == generated().public_key_pem()
    assert service_account(key_file()) is service_account(key_file())


def test_missing_optional_fields_take_google_defaults() -> None:
    """No token_uri: Google's; no private_key_id: empty (the assertion then has no kid)."""
    parsed = service_account(key_file(token_uri=None, private_key_id=None))
    assert (parsed.token_uri, parsed.private_key_id) == (GOOGLE_TOKEN_URI, "")


def ec_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("not json", "not valid JSON"),
        (json.dumps(["a", "list"]), "needs client_email and private_key"),
        (json.dumps({"client_email": "a@b"}), "needs client_email and private_key"),
        (
            key_file(private_key="-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"),
            "cannot be read",
        ),
        (key_file(private_key=ec_key_pem()), "not an RSA key"),
    ],
)
def test_unusable_key_files_are_refused_saying_why(text: str, said: str) -> None:
    """Each way a key file can be wrong has its own plain message (shown beside the config field)."""
    with pytest.raises(ServiceAccountInvalid, match=said):
        service_account(text)


def test_generated_accounts_look_like_googles_key_files() -> None:
    """The layout Google issues: a PKCS#8 key, a 40-hex-digit key id, a copy handed out each time."""
    info = generated().key_file()
    assert info["type"] == "service_account" and info["private_key"].startswith(
        "-----BEGIN PRIVATE KEY-----\n"
    )
    assert len(info["private_key_id"]) == 40 and int(info["private_key_id"], 16) >= 0
    info["token_uri"] = "changed"
    assert generated().key_file()["token_uri"] == GOOGLE_TOKEN_URI


def test_a_config_validator_says_how_to_fix_a_bad_key_file() -> None:
    """checked_key_file passes a good file through and tells the admin to upload the key file."""
    good = SecretStr(key_file())
    assert checked_key_file(good) is good
    with pytest.raises(ValueError, match=r"^Upload the service account key file: .*not valid JSON\.$"):
        checked_key_file(SecretStr("{"))
