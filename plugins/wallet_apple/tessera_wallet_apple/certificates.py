"""The signing identity of a tenant's passes: Pass Type ID certificate, its private key, Apple's WWDR.

A tenant uploads either the ``.p12`` Keychain exports (base64, with its password) or the certificate
and private key as PEM, plus Apple's WWDR intermediate. Everything that would make Wallet refuse the
passes later is checked here, when the upload is saved, with a message a tenant admin can act on.
Parsing a .p12 takes milliseconds, so loaded identities are cached per distinct secret material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
CACHE_SIZE = 64  # distinct identities kept parsed (tenants x certificate renewals); a few KB each
APPLE_WWDR_HINT = (
    "download Apple's WWDR G4 intermediate (AppleWWDRCAG4.cer) from "
    "https://www.apple.com/certificateauthority/ and paste it"
)


Part = Literal["p12", "password", "certificate", "key", "key_password", "wwdr"]


class CertificateError(ValueError):
    """An uploaded certificate, key or password cannot sign passes; ``str()`` says how to fix it.

    ``part`` names what to replace: the ``p12`` file or its ``password``, the PEM ``certificate``,
    ``key`` or ``key_password``, or the ``wwdr`` intermediate. A ``ValueError``, so pydantic
    validators that raise it turn it into a validation error.
    """

    def __init__(self, message: str, part: Part = "certificate") -> None:
        super().__init__(message)
        self.part: Part = part


@dataclass(frozen=True)
class SigningIdentity:
    """What signs one tenant's passes, with the identifiers pass.json must carry."""

    certificate: x509.Certificate
    private_key: SigningKey
    wwdr: x509.Certificate
    pass_type_identifier: str  # the certificate subject's UID
    team_identifier: str  # the certificate subject's OU
    source: Part = "certificate"  # the upload the certificate came from: "p12" or "certificate"

    @property
    def not_valid_after(self) -> datetime:
        """When the Pass Type ID certificate expires (passes signed after it are refused)."""
        return self.certificate.not_valid_after_utc

    def check_validity(self, now: datetime | None = None) -> None:
        """Raise :class:`CertificateError` unless the certificate is valid at ``now`` (default: now)."""
        now = now or datetime.now(UTC)
        cert = self.certificate
        if now > cert.not_valid_after_utc:
            raise CertificateError(
                f"The Pass Type ID certificate for {self.pass_type_identifier} expired on "
                f"{cert.not_valid_after_utc:%Y-%m-%d}: create a new one in your Apple Developer account "
                "(Certificates, Identifiers & Profiles > Pass Type IDs) and upload it.",
                self.source,
            )
        if now < cert.not_valid_before_utc:
            raise CertificateError(
                f"The Pass Type ID certificate for {self.pass_type_identifier} is not valid before "
                f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC: check the server's clock or wait until then.",
                self.source,
            )

    def pem_pair(self) -> tuple[bytes, bytes]:
        """The certificate and its private key as PEM (the key unencrypted), e.g. for an APNs TLS client."""
        cert = self.certificate.public_bytes(serialization.Encoding.PEM)
        key = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cert, key


# --- decoding the uploads ---------------------------------------------------------------------
def _base64(text: str, what: str, part: Part) -> bytes:
    """Base64 text (line breaks and spaces allowed, as ``base64`` wraps it) as bytes."""
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise CertificateError(
            f"The {what} must be base64 encoded (macOS: base64 -i Certificates.p12 | pbcopy).", part
        ) from None
    if not raw:
        raise CertificateError(f"The {what} is empty.", part)
    return raw


def _certificate(text: str, what: str, part: Part) -> x509.Certificate:
    """A certificate given as PEM (or, leniently, as base64 of the DER ``.cer`` Apple downloads)."""
    text = text.strip()
    try:
        if "-----BEGIN" in text:
            return x509.load_pem_x509_certificate(text.encode())
        return x509.load_der_x509_certificate(_base64(text, what, part))
    except (ValueError, CertificateError):
        raise CertificateError(
            f"The {what} is not a PEM certificate: paste the text from -----BEGIN CERTIFICATE----- "
            "to -----END CERTIFICATE----- (openssl x509 -inform DER -in file.cer converts a .cer).",
            part,
        ) from None


def _private_key(text: str, password: str | None) -> SigningKey:
    """A PEM private key, decrypted with ``password`` when it is encrypted."""
    data = text.strip().encode()
    secret = password.encode() if password else None
    try:
        key = serialization.load_pem_private_key(data, secret)
    except TypeError:  # cryptography says whether a password was missing or superfluous
        if secret is None:
            raise CertificateError(
                "The private key is encrypted: give its password as private key password.", "key_password"
            ) from None
        raise CertificateError(
            "The private key is not encrypted, but a private key password was given: leave it empty.",
            "key_password",
        ) from None
    except ValueError:
        if "ENCRYPTED" in text and secret is not None:
            raise CertificateError("The private key password is wrong.", "key_password") from None
        raise CertificateError(
            "The private key is not a PEM private key: paste the text from -----BEGIN PRIVATE KEY----- "
            "(or BEGIN RSA PRIVATE KEY) to the matching -----END line.",
            "key",
        ) from None
    except UnsupportedAlgorithm:
        raise CertificateError("The private key uses an algorithm that cannot be read.", "key") from None
    return _signing_key(key, "key")


def _signing_key(key: object, part: Part) -> SigningKey:
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CertificateError("The private key must be an RSA key, as Apple issues for Pass Type IDs.", part)
    return key


def _looks_like_pfx(raw: bytes) -> bool:
    """Whether the bytes start like a PKCS#12 PFX (DER SEQUENCE, then INTEGER version 3).

    cryptography reports a wrong password and a file that is no .p12 with the same error; this
    tells the two apart so the admin knows which to fix.
    """
    if len(raw) < 8 or raw[0] != 0x30:
        return False
    length_octets = raw[1] - 0x80 if raw[1] & 0x80 else 0
    start = 2 + length_octets
    return raw[start : start + 3] == b"\x02\x01\x03"


def _from_p12(p12_base64: str, password: str | None) -> tuple[x509.Certificate, SigningKey]:
    raw = _base64(p12_base64, ".p12 certificate", "p12")
    if not _looks_like_pfx(raw):
        raise CertificateError(
            "The uploaded file is not a .p12: export the Pass Type ID certificate with its private key "
            "from Keychain Access (File > Export Items, format Personal Information Exchange) and "
            "upload that file.",
            "p12",
        )
    try:
        key, cert, _ = pkcs12.load_key_and_certificates(raw, password.encode() if password else None)
    except ValueError:
        raise CertificateError(
            "The .p12 password is wrong: enter the password chosen when the .p12 was exported.", "password"
        ) from None
    except UnsupportedAlgorithm:
        raise CertificateError(
            "The .p12 is encrypted with an algorithm that cannot be read: export it again.", "p12"
        ) from None
    if cert is None or key is None:
        raise CertificateError(
            "The .p12 must hold both the certificate and its private key: in Keychain Access, expand the "
            "certificate and export it together with its key.",
            "p12",
        )
    return cert, _signing_key(key, "p12")


# --- checking what was uploaded -----------------------------------------------------------------
def _subject(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    values = cert.subject.get_attributes_for_oid(oid)
    return str(values[0].value).strip() if values else ""


def _public_der(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _identity(
    cert: x509.Certificate, key: SigningKey, wwdr: x509.Certificate, source: Part
) -> SigningIdentity:
    """Check that the pieces belong together and form a Pass Type ID identity (dates aside).

    ``source`` is the upload the certificate came from (``p12`` or ``certificate``).
    """
    if _public_der(cert.public_key()) != _public_der(key.public_key()):
        raise CertificateError(
            "The private key does not belong to the certificate: upload the key that was used to "
            "request this certificate (or export certificate and key together as a .p12).",
            "key" if source == "certificate" else "p12",
        )
    uid = _subject(cert, NameOID.USER_ID)
    if not uid.startswith("pass."):
        name = cert.subject.rfc4514_string()
        raise CertificateError(
            f"This is not a Pass Type ID certificate (its subject is {name}): in your Apple Developer "
            "account create a certificate under Identifiers > Pass Type IDs and upload that one.",
            source,
        )
    team = _subject(cert, NameOID.ORGANIZATIONAL_UNIT_NAME)
    if not team:
        raise CertificateError(
            f"The certificate for {uid} carries no team identifier (subject OU): upload the certificate "
            "exactly as Apple issued it.",
            source,
        )
    try:
        is_ca = wwdr.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise CertificateError(
            "The WWDR certificate is not a certification authority (perhaps the pass certificate was "
            f"pasted twice): {APPLE_WWDR_HINT}.",
            "wwdr",
        )
    try:
        cert.verify_directly_issued_by(wwdr)
    except (ValueError, TypeError, InvalidSignature):
        issuer = cert.issuer.rfc4514_string()
        raise CertificateError(
            f"The WWDR certificate did not issue the pass certificate (issued by {issuer}): "
            f"{APPLE_WWDR_HINT} (G4 for certificates issued since 2021).",
            "wwdr",
        ) from None
    return SigningIdentity(cert, key, wwdr, uid, team, source)


class _Cache:
    """A small thread-safe LRU of loaded identities, keyed by a hash of their secret material.

    Keys are digests, so the cache holds no copy of passwords or base64 uploads.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[bytes, SigningIdentity] = OrderedDict()
        self.lock = threading.Lock()

    def get_or_load(
        self, parts: tuple[str | None, ...], load: Callable[[], SigningIdentity]
    ) -> SigningIdentity:
        digest = hashlib.sha256()
        for part in parts:  # length-prefixed, so ("ab", "c") and ("a", "bc") differ
            data = b"\x00" if part is None else b"\x01" + part.encode()
            digest.update(len(data).to_bytes(8, "big") + data)
        key = digest.digest()
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        identity = load()  # outside the lock: a slow parse must not hold up other tenants
        with self.lock:
            self.items[key] = identity
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return identity

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


_cache = _Cache(CACHE_SIZE)


def load_p12(
    p12_base64: str, password: str | None, wwdr_pem: str, *, now: datetime | None = None
) -> SigningIdentity:
    """The identity in a base64 ``.p12`` (certificate and key) plus Apple's WWDR intermediate, checked.

    Raises :class:`CertificateError` saying what to fix when anything would stop passes from signing,
    including a certificate not valid at ``now``.
    """

    def load() -> SigningIdentity:
        cert, key = _from_p12(p12_base64, password)
        return _identity(cert, key, _certificate(wwdr_pem, "WWDR certificate", "wwdr"), "p12")

    identity = _cache.get_or_load(("p12", p12_base64, password, wwdr_pem), load)
    identity.check_validity(now)
    return identity


def load_pem(
    certificate_pem: str,
    private_key_pem: str,
    wwdr_pem: str,
    private_key_password: str | None = None,
    *,
    now: datetime | None = None,
) -> SigningIdentity:
    """The identity given as a PEM certificate and PEM private key plus Apple's WWDR intermediate, checked.

    Raises :class:`CertificateError` saying what to fix when anything would stop passes from signing,
    including a certificate not valid at ``now``.
    """

    def load() -> SigningIdentity:
        cert = _certificate(certificate_pem, "Pass Type ID certificate", "certificate")
        key = _private_key(private_key_pem, private_key_password)
        return _identity(cert, key, _certificate(wwdr_pem, "WWDR certificate", "wwdr"), "certificate")

    parts = ("pem", certificate_pem, private_key_pem, private_key_password, wwdr_pem)
    identity = _cache.get_or_load(parts, load)
    identity.check_validity(now)
    return identity


def clear_cache() -> None:
    """Forget every loaded identity (tests; a process that rotates certificates does not need it)."""
    _cache.clear()
