"""An admin uploads the Pass Type ID certificate through Settings > Plugins: the .p12 file and
Apple's WWDR certificate as files (a DER .cer works too); a wrong password, a file that is not a
certificate or a key that does not match is refused next to its field, and nothing is stored."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.serialization import Encoding
from fastapi.testclient import TestClient
from tessera_wallet_apple.testchain import chain, mismatched_key_pem

from core.db.engines import control_session
from core.plugins import get_host
from core.tenancy.plugin_settings import channel_config, set_enabled
from core.tenancy.tenants import get_tenant
from tests.support import csrf_of, login

URL = "/t/shop/settings/channels/wallet_apple/config"


def _stored() -> object:
    with control_session() as control:
        return channel_config(control, get_tenant(control, "shop"), get_host(), "wallet_apple")


def _post(client: TestClient, files: dict[str, tuple[str, bytes]], **fields: str) -> str:
    data = {"csrf_token": csrf_of(client, "/t/shop/settings/plugins"), **fields}
    answer = client.post(URL, data=data, files={k: (n, c, "application/octet-stream") for k, (n, c) in files.items()},
                         headers={"HX-Request": "true"})  # fmt: skip
    return f"{answer.status_code} {answer.text}"


def test_the_certificate_is_uploaded_as_files_and_checked(sqlite_installation) -> None:
    shop = sqlite_installation.tenant("shop")
    with control_session() as control:
        set_enabled(control, get_tenant(control, "shop"), get_host(), "wallet_apple", True)
        control.commit()
    p12 = base64.b64decode(chain().p12_base64())
    wwdr_der = chain().wwdr.public_bytes(Encoding.DER)
    with sqlite_installation.client() as client:
        login(client, shop.admin.email)
        wrong = _post(client, {"certificate_p12": ("pass.p12", p12), "wwdr_certificate_pem": ("wwdr.cer", wwdr_der)},
                      certificate_password="not-the-password")  # fmt: skip
        assert wrong.startswith("400") and "password is wrong" in wrong
        assert _stored() is None
        junk = _post(client, {"certificate_p12": ("pass.p12", b"not a p12 at all"),
                              "wwdr_certificate_pem": ("wwdr.cer", wwdr_der)}, certificate_password="x")  # fmt: skip
        assert junk.startswith("400") and _stored() is None
        mismatch = _post(client, {"certificate_pem": ("pass.pem", chain().certificate_pem.encode()),
                                  "private_key_pem": ("key.pem", mismatched_key_pem().encode()),
                                  "wwdr_certificate_pem": ("wwdr.pem", chain().wwdr_pem.encode())})  # fmt: skip
        assert (
            mismatch.startswith("400")
            and "does not belong to the certificate" in mismatch
            and _stored() is None
        )
        saved = _post(client, {"certificate_p12": ("pass.p12", p12), "wwdr_certificate_pem": ("wwdr.cer", wwdr_der)},
                      certificate_password=chain().p12_password)  # fmt: skip
        assert saved.startswith("200") and "Configuration saved." in saved
        config = _stored()
        assert getattr(config, "pass_type_identifier", None) == chain().pass_type_identifier
        # Saving again without files keeps the certificate and the WWDR certificate.
        again = _post(client, {}, apns_topic="")
        assert again.startswith("200"), again
        assert getattr(_stored(), "team_identifier", None) == chain().team_identifier
