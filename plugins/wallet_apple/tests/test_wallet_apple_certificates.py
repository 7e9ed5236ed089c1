"""Loading a Pass Type ID signing identity: what is read from it, what is refused, and that it is parsed once."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from tessera_wallet_apple import certificates, testchain
from tessera_wallet_apple.certificates import CertificateError, load_p12, load_pem


def refused(load: object, *args: object, **kwargs: object) -> CertificateError:
    """The CertificateError raised by ``load(*args, **kwargs)``."""
    with pytest.raises(CertificateError) as caught:
        load(*args, **kwargs)  # type: ignore[operator]
    return caught.value


def test_a_p12_gives_the_identifiers_of_its_certificate() -> None:
    """UID is the pass type identifier, OU the team identifier; the WWDR certificate is kept to sign with."""
    chain = testchain.chain()
    identity = load_p12(chain.p12_base64(), chain.p12_password, chain.wwdr_pem)
    assert identity.pass_type_identifier == "pass.com.example.tessera.test"
    assert identity.team_identifier == "TESTTEAM01"
    assert identity.certificate == chain.certificate and identity.wwdr == chain.wwdr
    assert identity.not_valid_after == chain.certificate.not_valid_after_utc


def test_a_p12_as_keychain_access_exports_it_loads() -> None:
    """macOS Keychain exports use 3DES and a SHA-1 MAC; base64 wrapped at 76 columns is fine too."""
    chain = testchain.chain()
    wrapped = base64.encodebytes(base64.b64decode(chain.p12_base64(legacy=True))).decode()
    assert "\n" in wrapped.strip()
    identity = load_p12(wrapped, chain.p12_password, chain.wwdr_pem)
    assert identity.pass_type_identifier == chain.pass_type_identifier


def test_a_pem_pair_loads_with_an_encrypted_key_and_its_password() -> None:
    """A PEM certificate and key; an encrypted key needs the right password, and says so otherwise."""
    chain = testchain.chain()
    assert load_pem(chain.certificate_pem, chain.private_key_pem, chain.wwdr_pem).source == "certificate"
    encrypted = testchain.key_pem(chain.private_key, password="s3cret")
    identity = load_pem(chain.certificate_pem, encrypted, chain.wwdr_pem, "s3cret")
    assert identity.team_identifier == chain.team_identifier
    error = refused(load_pem, chain.certificate_pem, encrypted, chain.wwdr_pem)
    assert error.part == "key_password" and "is encrypted: give its password" in str(error)
    error = refused(load_pem, chain.certificate_pem, encrypted, chain.wwdr_pem, "wrong")
    assert (error.part, str(error)) == ("key_password", "The private key password is wrong.")


def test_the_wwdr_certificate_may_be_apples_der_download_in_base64() -> None:
    """Apple serves AppleWWDRCAG4.cer as DER; its base64 is accepted as well as PEM."""
    chain = testchain.chain()
    der = base64.b64encode(chain.wwdr.public_bytes(serialization.Encoding.DER)).decode()
    assert load_pem(chain.certificate_pem, chain.private_key_pem, der).wwdr == chain.wwdr


def test_a_wrong_p12_password_is_told_apart_from_a_file_that_is_no_p12() -> None:
    """cryptography says the same for both; the admin needs to know which one to fix."""
    chain = testchain.chain()
    wrong = refused(load_p12, chain.p12_base64(), "guess", chain.wwdr_pem)
    assert wrong.part == "password" and "password is wrong" in str(wrong)
    not_p12 = refused(
        load_p12, base64.b64encode(b"%PDF-1.4 a scanned certificate").decode(), "x", chain.wwdr_pem
    )
    assert not_p12.part == "p12" and "not a .p12" in str(not_p12)
    not_base64 = refused(load_p12, "certificate.p12", "x", chain.wwdr_pem)
    assert not_base64.part == "p12" and "base64" in str(not_base64)


def test_text_that_is_not_pem_is_refused() -> None:
    """Certificate and key each say they are not PEM and what PEM looks like."""
    chain = testchain.chain()
    error = refused(load_pem, "MIIB... truncated", chain.private_key_pem, chain.wwdr_pem)
    assert error.part == "certificate" and "-----BEGIN CERTIFICATE-----" in str(error)
    error = refused(load_pem, chain.certificate_pem, "not a key", chain.wwdr_pem)
    assert error.part == "key" and "not a PEM private key" in str(error)
    error = refused(load_pem, chain.certificate_pem, chain.private_key_pem, "")
    assert error.part == "wwdr"


def test_a_key_that_does_not_match_the_certificate_is_refused() -> None:
    """Signing with another key would give passes no device accepts."""
    chain = testchain.chain()
    error = refused(load_pem, chain.certificate_pem, testchain.mismatched_key_pem(), chain.wwdr_pem)
    assert error.part == "key" and "does not belong to the certificate" in str(error)


def test_expired_and_not_yet_valid_certificates_are_refused() -> None:
    """Both give the date; the expired one says to create a new certificate."""
    chain = testchain.chain()
    expired = refused(load_pem, testchain.expired_certificate_pem(), chain.private_key_pem, chain.wwdr_pem)
    assert "expired on" in str(expired) and "create a new one" in str(expired)
    early = refused(
        load_pem, testchain.not_yet_valid_certificate_pem(), chain.private_key_pem, chain.wwdr_pem
    )
    assert "is not valid before" in str(early)


def test_a_certificate_that_is_not_a_pass_type_id_is_refused() -> None:
    """No UID=pass.… means another kind of Apple certificate (or none); no OU means no team id."""
    chain = testchain.chain()
    no_uid = testchain.pem(testchain.issue_pass_certificate(chain, pass_type_identifier=None))
    error = refused(load_pem, no_uid, chain.private_key_pem, chain.wwdr_pem)
    assert "not a Pass Type ID certificate" in str(error) and "Pass Type IDs" in str(error)
    wrong_uid = testchain.pem(testchain.issue_pass_certificate(chain, pass_type_identifier="com.example.app"))
    assert "not a Pass Type ID" in str(refused(load_pem, wrong_uid, chain.private_key_pem, chain.wwdr_pem))
    no_ou = testchain.pem(testchain.issue_pass_certificate(chain, team_identifier=None))
    error = refused(load_pem, no_ou, chain.private_key_pem, chain.wwdr_pem)
    assert "no team identifier" in str(error)


def test_the_wwdr_certificate_must_be_the_ca_that_issued_the_pass_certificate() -> None:
    """The pass certificate pasted as WWDR is no CA; the root is a CA but did not sign the leaf."""
    chain = testchain.chain()
    not_ca = refused(load_pem, chain.certificate_pem, chain.private_key_pem, chain.certificate_pem)
    assert not_ca.part == "wwdr" and "not a certification authority" in str(not_ca)
    not_issuer = refused(load_pem, chain.certificate_pem, chain.private_key_pem, chain.root_pem)
    assert not_issuer.part == "wwdr" and "did not issue the pass certificate" in str(not_issuer)


def test_an_identity_is_parsed_once_and_still_checked_for_expiry() -> None:
    """The same upload gives the same loaded object; a later clock still sees the expiry."""
    chain = testchain.chain()
    certificates.clear_cache()
    first = load_p12(chain.p12_base64(), chain.p12_password, chain.wwdr_pem)
    assert load_p12(chain.p12_base64(), chain.p12_password, chain.wwdr_pem) is first
    assert load_pem(chain.certificate_pem, chain.private_key_pem, chain.wwdr_pem) is not first
    later = datetime.now(UTC) + timedelta(days=800)
    error = refused(load_p12, chain.p12_base64(), chain.p12_password, chain.wwdr_pem, now=later)
    assert "expired" in str(error) and error.part == "p12"


def test_pem_pair_gives_the_certificate_and_unencrypted_key() -> None:
    """For the APNs TLS client: the same certificate and key back as PEM."""
    chain = testchain.chain()
    cert_pem, key_pem = load_p12(chain.p12_base64(), chain.p12_password, chain.wwdr_pem).pem_pair()
    assert cert_pem.decode() == chain.certificate_pem
    assert (
        load_pem(cert_pem.decode(), key_pem.decode(), chain.wwdr_pem).team_identifier == chain.team_identifier
    )
