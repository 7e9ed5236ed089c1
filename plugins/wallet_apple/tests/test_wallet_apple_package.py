"""A .pkpass as Wallet reads it: files at the root, a manifest of their exact bytes, a verifiable signature."""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import subprocess
import zipfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import pkcs7
from tessera_wallet_apple import testchain
from tessera_wallet_apple.certificates import SigningIdentity, load_p12
from tessera_wallet_apple.checks import pass_validator
from tessera_wallet_apple.package import build_pkpass, pass_json, strings_file

from core.plugin_api import PassBarcode, PassBeacon, PassField, PassLocation, RenderedPass


def identity() -> SigningIdentity:
    """The test chain's signing identity."""
    chain = testchain.chain()
    return load_p12(chain.p12_base64(), chain.p12_password, chain.wwdr_pem)


def files_of(pkpass: bytes) -> dict[str, bytes]:
    """Every file of an archive by name."""
    with zipfile.ZipFile(io.BytesIO(pkpass)) as archive:
        assert archive.testzip() is None  # every CRC right
        return {name: archive.read(name) for name in archive.namelist()}


def openssl_verify(tmp_path: Path, signature: bytes, manifest: bytes) -> subprocess.CompletedProcess[str]:
    """``openssl cms -verify`` of a detached signature over ``manifest`` against the test root and WWDR."""
    (tmp_path / "signature").write_bytes(signature)
    (tmp_path / "manifest.json").write_bytes(manifest)
    (tmp_path / "ca.pem").write_text(testchain.chain().ca_bundle_pem)
    command = ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", "signature",
               "-content", "manifest.json", "-CAfile", "ca.pem", "-purpose", "any", "-out", "manifest.check"]  # fmt: skip
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False)


def test_the_signature_verifies_with_openssl(tmp_path: Path) -> None:
    """Detached CMS over manifest.json, chaining through the WWDR intermediate to the root."""
    files = files_of(build_pkpass(testchain.store_card(), identity()))
    result = openssl_verify(tmp_path, files["signature"], files["manifest.json"])
    assert result.returncode == 0, result.stderr
    assert "Verification successful" in result.stderr
    assert (tmp_path / "manifest.check").read_bytes() == files["manifest.json"]


def test_a_tampered_manifest_fails_verification(tmp_path: Path) -> None:
    """Changing one byte of manifest.json after signing breaks the signature."""
    files = files_of(build_pkpass(testchain.store_card(), identity()))
    tampered = files["manifest.json"].replace(b'"pass.json":"', b'"pass.json":"0', 1)
    assert tampered != files["manifest.json"]
    result = openssl_verify(tmp_path, files["signature"], tampered)
    assert result.returncode != 0
    assert "verify" in result.stderr.lower() and "successful" not in result.stderr


def test_the_signature_carries_the_pass_certificate_and_wwdr_with_sha256() -> None:
    """Wallet needs the WWDR intermediate inside the signature; the digest is SHA-256."""
    chain = testchain.chain()
    signature = files_of(build_pkpass(testchain.store_card(), identity()))["signature"]
    assert set(pkcs7.load_der_pkcs7_certificates(signature)) == {chain.certificate, chain.wwdr}
    sha256_oid = bytes.fromhex("0609608648016503040201")  # DER of OID 2.16.840.1.101.3.4.2.1
    assert sha256_oid in signature


def test_the_manifest_holds_the_sha1_of_every_other_file() -> None:
    """One entry per file except manifest.json and signature, each the SHA-1 of the zipped bytes."""
    files = files_of(build_pkpass(testchain.store_card(), identity()))
    manifest = json.loads(files["manifest.json"])
    assert set(manifest) == set(files) - {"manifest.json", "signature"}
    for name, digest in manifest.items():
        assert digest == hashlib.sha1(files[name]).hexdigest(), name


def test_files_sit_at_the_root_with_apples_names() -> None:
    """pass.json, images per scale (icon.png, icon@2x.png, icon@3x.png...), one .lproj per language."""
    names = set(files_of(build_pkpass(testchain.store_card(), identity())))
    images = {f"{kind}{suffix}.png" for kind in ("icon", "logo", "strip") for suffix in ("", "@2x", "@3x")}
    strings = {f"{lang}.lproj/pass.strings" for lang in ("en", "fr", "de")}
    assert names == {"pass.json", "manifest.json", "signature"} | images | strings


def test_pngs_are_stored_and_text_is_deflated() -> None:
    """PNGs are compressed already: deflating them again would cost time for nothing."""
    pkpass = build_pkpass(testchain.store_card(), identity())
    with zipfile.ZipFile(io.BytesIO(pkpass)) as archive:
        methods = {info.filename: info.compress_type for info in archive.infolist()}
    assert all(method == zipfile.ZIP_STORED for name, method in methods.items() if name.endswith(".png"))
    texts = ["pass.json", "manifest.json", "fr.lproj/pass.strings"]
    assert all(methods[name] == zipfile.ZIP_DEFLATED for name in texts)


def test_pass_json_validates_against_the_schema_and_carries_the_certificates_ids() -> None:
    """The pass type and team identifiers are the certificate's; the whole file passes the schema."""
    files = files_of(build_pkpass(testchain.store_card(), identity()))
    data = json.loads(files["pass.json"].decode("utf-8"))
    pass_validator().validate(data)
    assert (data["formatVersion"], data["passTypeIdentifier"], data["teamIdentifier"]) == (
        1, testchain.PASS_TYPE_IDENTIFIER, testchain.TEAM_IDENTIFIER,
    )  # fmt: skip
    assert data["serialNumber"] == "TESSERA-0001"
    assert data["webServiceURL"] == "https://tessera.example.com/passes/apple"
    assert len(data["authenticationToken"]) >= 16


def test_pass_strings_are_utf16_with_the_translations(tmp_path: Path) -> None:
    """Each translated language's pass.strings maps pass.json's texts to the translation."""
    files = files_of(build_pkpass(testchain.store_card(), identity()))
    french = files["fr.lproj/pass.strings"]
    assert french.startswith(codecs.BOM_UTF16_LE)
    text = french.decode("utf-16")
    assert '"Points expire after 24 months." = "Les points expirent après 24 mois.";' in text.splitlines()
    assert '"You now have %@ points" = "Vous avez maintenant %@ points";' in text
    assert '"Tier" = "Stufe";' in files["de.lproj/pass.strings"].decode("utf-16")
    assert files["en.lproj/pass.strings"].decode("utf-16").startswith("/*")  # the default: a comment only


def test_pass_strings_escape_quotes_backslashes_and_newlines() -> None:
    """A text with a quote, a backslash or a line break stays one well-formed line."""
    text = strings_file({'Say "hi"': 'Dis "salut"\nà C:\\shop'}).decode("utf-16")
    assert text == '"Say \\"hi\\"" = "Dis \\"salut\\"\\nà C:\\\\shop";\n'


def test_without_translations_there_is_no_lproj() -> None:
    """A pass in one language has no .lproj folder at all."""
    names = files_of(build_pkpass(testchain.store_card(translations={}), identity()))
    assert not any(".lproj/" in name for name in names)


def sample(**changes: Any) -> dict[str, Any]:
    """pass.json of the store card with these changes."""
    return pass_json(testchain.store_card(**changes), "pass.com.shop.card", "ABCDE12345")


def test_fields_go_to_their_areas_with_numbers_links_and_change_messages() -> None:
    """Numeric values become JSON numbers; a link becomes attributedValue; changeMessage is kept."""
    store = sample()["storeCard"]
    assert isinstance(store, dict)
    assert [f["key"] for f in store["headerFields"]] == ["tier"]
    (points,) = store["primaryFields"]
    assert points == {
        "key": "points",
        "label": "Points",
        "value": 1250,
        "changeMessage": "You now have %@ points",
    }
    account = store["backFields"][1]
    assert account["value"] == "Manage your card"
    assert account["attributedValue"] == "<a href='https://shop.example.com/account'>Manage your card</a>"
    fields = (PassField(key="spend", area="secondary", value="12.50", numeric=True),
              PassField(key="code", area="auxiliary", value="007"),
              PassField(key="x", area="back", value="A & B", link="https://x.example/?a=1&b='2'"))  # fmt: skip
    store = sample(fields=fields)["storeCard"]
    assert isinstance(store, dict)
    assert store["secondaryFields"][0]["value"] == 12.5 and store["auxiliaryFields"][0]["value"] == "007"
    assert (
        store["backFields"][0]["attributedValue"]
        == "<a href='https://x.example/?a=1&amp;b=&#x27;2&#x27;'>A &amp; B</a>"
    )


def test_barcodes_include_the_legacy_key_except_for_code128() -> None:
    """iOS 8 and earlier read `barcode`, which cannot be Code128."""
    qr = sample()
    assert qr["barcodes"] == [{"format": "PKBarcodeFormatQR", "message": "M-TESSERA-0001",
                               "messageEncoding": "iso-8859-1", "altText": "TESSERA-0001"}]  # fmt: skip
    assert qr["barcode"] == qr["barcodes"][0]
    code128 = sample(barcode=PassBarcode(format="code128", message="123"))
    assert code128["barcodes"] == [{"format": "PKBarcodeFormatCode128", "message": "123",
                                    "messageEncoding": "iso-8859-1"}]  # fmt: skip
    assert "barcode" not in code128
    assert "barcodes" not in sample(barcode=None)


def test_dates_carry_their_offset_and_naive_ones_are_utc() -> None:
    """relevantDate and expirationDate are ISO-8601 with a time zone, as Wallet requires."""
    paris = timezone(timedelta(hours=1))
    data = sample(relevant_date=datetime(2030, 12, 24, 18, 0, 0, 123, tzinfo=paris),
                  expiration_date=datetime(2031, 1, 1, 0, 0))  # fmt: skip
    assert data["relevantDate"] == "2030-12-24T18:00:00+01:00"
    assert data["expirationDate"] == "2031-01-01T00:00:00+00:00"
    pass_validator().validate(data)


def test_optional_parts_appear_only_when_given() -> None:
    """NFC needs both parts; web service keys need a URL; voided only when true; places as given."""
    assert "nfc" not in sample(nfc_message="hello")
    nfc = sample(nfc_message="hello", nfc_public_key="MDkwEwYHKoZIzj0CAQ==")["nfc"]
    assert nfc == {"message": "hello", "encryptionPublicKey": "MDkwEwYHKoZIzj0CAQ=="}
    plain = sample(web_service_url=None, voided=False, locations=(), logo_text=None, label_color=None)
    assert not {
        "webServiceURL",
        "authenticationToken",
        "voided",
        "locations",
        "logoText",
        "labelColor",
    } & set(plain)
    data = sample(voided=True, beacons=(PassBeacon(proximity_uuid="E2C56DB5-DFFB-48D2-B060-D0F5A71096E0", major=1),),
                  locations=(PassLocation(latitude=1.5, longitude=2.5, altitude=30),))  # fmt: skip
    assert data["voided"] is True
    assert data["beacons"] == [{"proximityUUID": "E2C56DB5-DFFB-48D2-B060-D0F5A71096E0", "major": 1}]
    assert data["locations"] == [{"latitude": 1.5, "longitude": 2.5, "altitude": 30}]
    assert (data["foregroundColor"], data["backgroundColor"]) == ("rgb(255, 255, 255)", "rgb(32, 64, 128)")
    assert data["logoText"] == "Example Shop"
    pass_validator().validate(data)


def test_every_style_builds_a_valid_pass() -> None:
    """The style key holds the fields, whichever style it is."""
    for style in ("storeCard", "coupon", "eventTicket", "generic"):
        data = sample(style=style, images={})
        assert style in data and all(key not in data for key in {"storeCard", "coupon"} - {style})
        pass_validator().validate(data)


def test_the_archive_is_the_same_for_the_same_pass_but_its_signature() -> None:
    """Files are dated with the pass's updated_at: a rebuild differs only in the signing time."""
    first = files_of(build_pkpass(testchain.store_card(), identity()))
    second = files_of(build_pkpass(testchain.store_card(), identity()))
    assert {k: v for k, v in first.items() if k != "signature"} == {
        k: v for k, v in second.items() if k != "signature"
    }
    with zipfile.ZipFile(io.BytesIO(build_pkpass(testchain.store_card(), identity()))) as archive:
        assert archive.getinfo("pass.json").date_time == (2026, 11, 20, 9, 30, 0)


def test_an_unsafe_language_code_is_refused() -> None:
    """A language code names a folder: it may not climb out of the archive root."""
    rendered: RenderedPass = testchain.store_card(translations={"../x": {"Tier": "T"}})
    with pytest.raises(ValueError, match="not a language code"):
        build_pkpass(rendered, identity())


def test_a_pass_dated_now_builds() -> None:
    """Any updated_at after 1980 fits a ZIP timestamp."""
    assert build_pkpass(testchain.store_card(updated_at=datetime.now(UTC)), identity()).startswith(b"PK")
