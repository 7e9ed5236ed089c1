"""TEST-ONLY signing material shaped like Apple's: a root CA, a WWDR-like intermediate, a Pass Type ID leaf.

Also a realistic store card (:func:`store_card`) with generated images, to sign with it.
Generated at run time (nothing secret is shipped) for the tests, the demo and the benchmarks. Passes
signed with it verify against :attr:`Chain.ca_bundle_pem` but are refused by real iPhones, which trust
only Apple's root: never configure it for a real tenant. Like Apple's, every key is RSA 2048 and the
leaf's subject is ``UID=pass.…, CN=Pass Type ID: pass.…, OU=<team id>, O=…, C=…``. Key generation
is slow, so the chain is made once per process.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image, ImageChops, ImageDraw

from core.plugin_api import PassBarcode, PassField, PassLocation, RenderedPass

PASS_TYPE_IDENTIFIER = "pass.com.example.tessera.test"
TEAM_IDENTIFIER = "TESTTEAM01"
ORGANIZATION = "Tessera Test Shop"
P12_PASSWORD = "tessera-test-password"
ROOT_NAME = "Tessera Test Apple Root CA"
WWDR_NAME = "Tessera Test Apple Worldwide Developer Relations CA"


@dataclass(frozen=True, eq=False)  # hashed by identity: the p12 of a chain is cached
class Chain:
    """The generated test chain: PEM texts and keys, and a password-protected .p12 of the leaf."""

    root: x509.Certificate
    root_key: rsa.RSAPrivateKey
    wwdr: x509.Certificate
    wwdr_key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    private_key: rsa.RSAPrivateKey
    pass_type_identifier: str = PASS_TYPE_IDENTIFIER
    team_identifier: str = TEAM_IDENTIFIER
    p12_password: str = P12_PASSWORD

    @property
    def root_pem(self) -> str:
        """The test root CA (what Apple Root CA - G3 is for real passes)."""
        return pem(self.root)

    @property
    def wwdr_pem(self) -> str:
        """The WWDR-like intermediate, as a tenant would paste Apple's WWDR G4."""
        return pem(self.wwdr)

    @property
    def certificate_pem(self) -> str:
        """The Pass Type ID leaf certificate."""
        return pem(self.certificate)

    @property
    def private_key_pem(self) -> str:
        """The leaf's private key, unencrypted PKCS#8."""
        return key_pem(self.private_key)

    @property
    def ca_bundle_pem(self) -> str:
        """Root and intermediate together: the ``-CAfile`` that verifies a signature."""
        return self.root_pem + self.wwdr_pem

    def p12_base64(self, *, legacy: bool = False) -> str:
        """The leaf and its key as a base64 .p12 protected by :attr:`p12_password`.

        ``legacy`` encrypts it as macOS Keychain Access exports (3DES, SHA-1 MAC).
        """
        return _chain_p12(self, legacy)

    def p12_config(self) -> dict[str, str]:
        """Channel config values using the .p12 upload."""
        return {
            "certificate_p12": self.p12_base64(),
            "certificate_password": self.p12_password,
            "wwdr_certificate_pem": self.wwdr_pem,
        }

    def pem_config(self) -> dict[str, str]:
        """Channel config values using the PEM certificate and key."""
        return {
            "certificate_pem": self.certificate_pem,
            "private_key_pem": self.private_key_pem,
            "wwdr_certificate_pem": self.wwdr_pem,
        }


@lru_cache(maxsize=8)
def _chain_p12(chain: Chain, legacy: bool) -> str:
    # Made once per chain: a fresh salt each time would defeat the identity cache of its users.
    return p12_base64(chain.certificate, chain.private_key, chain.p12_password, legacy=legacy)


def pem(cert: x509.Certificate) -> str:
    """A certificate as PEM text."""
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key: rsa.RSAPrivateKey, password: str | None = None) -> str:
    """A private key as PKCS#8 PEM text, encrypted when ``password`` is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()


def p12_base64(cert: x509.Certificate, key: rsa.RSAPrivateKey, password: str, *, legacy: bool = False) -> str:
    """A certificate and key as a base64 .p12 protected by ``password``."""
    encryption: serialization.KeySerializationEncryption
    if legacy:
        encryption = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(2048)
            .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .hmac_hash(hashes.SHA1())
            .build(password.encode())
        )
    else:
        encryption = serialization.BestAvailableEncryption(password.encode())
    raw = pkcs12.serialize_key_and_certificates(b"Pass Type ID", key, cert, None, encryption)
    return base64.b64encode(raw).decode()


def new_key() -> rsa.RSAPrivateKey:
    """A fresh RSA 2048 key, the size Apple uses."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(*parts: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in parts])


def _ca(
    subject: x509.Name, key: rsa.RSAPrivateKey, issuer: x509.Name, issuer_key: rsa.RSAPrivateKey, years: int
) -> x509.Certificate:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365 * years))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


def issue_pass_certificate(
    chain: Chain,
    *,
    key: rsa.RSAPrivateKey | None = None,
    pass_type_identifier: str | None = PASS_TYPE_IDENTIFIER,
    team_identifier: str | None = TEAM_IDENTIFIER,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> x509.Certificate:
    """A leaf issued by the chain's intermediate; ``None`` identifiers leave the UID/OU out."""
    now = datetime.now(UTC)
    parts: list[tuple[x509.ObjectIdentifier, str]] = []
    if pass_type_identifier is not None:
        parts += [(NameOID.USER_ID, pass_type_identifier)]
    parts += [(NameOID.COMMON_NAME, f"Pass Type ID: {pass_type_identifier or 'none'}")]
    if team_identifier is not None:
        parts += [(NameOID.ORGANIZATIONAL_UNIT_NAME, team_identifier)]
    parts += [(NameOID.ORGANIZATION_NAME, ORGANIZATION), (NameOID.COUNTRY_NAME, "US")]
    public_key = (key or chain.private_key).public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(_name(*parts))
        .issuer_name(chain.wwdr.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(chain.wwdr_key, hashes.SHA256())
    )


@lru_cache(maxsize=1)
def chain() -> Chain:
    """The process's test chain (generated on first use: three RSA 2048 keys)."""
    root_key, wwdr_key, leaf_key = new_key(), new_key(), new_key()
    root_name = _name(
        (NameOID.COMMON_NAME, ROOT_NAME),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "Tessera Test Certification Authority"),
        (NameOID.ORGANIZATION_NAME, "Tessera Test (not Apple Inc.)"),
        (NameOID.COUNTRY_NAME, "US"),
    )
    wwdr_name = _name(
        (NameOID.COMMON_NAME, WWDR_NAME),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "G4"),
        (NameOID.ORGANIZATION_NAME, "Tessera Test (not Apple Inc.)"),
        (NameOID.COUNTRY_NAME, "US"),
    )
    root = _ca(root_name, root_key, root_name, root_key, years=20)
    wwdr = _ca(wwdr_name, wwdr_key, root_name, root_key, years=10)
    partial = Chain(root, root_key, wwdr, wwdr_key, wwdr, leaf_key)  # the leaf is issued from it
    return Chain(root, root_key, wwdr, wwdr_key, issue_pass_certificate(partial, key=leaf_key), leaf_key)


@lru_cache(maxsize=1)
def other_key() -> rsa.RSAPrivateKey:
    """A key that belongs to no certificate of the chain (for "key does not match" cases)."""
    return new_key()


def expired_certificate_pem() -> str:
    """A Pass Type ID leaf for the chain's key that expired yesterday."""
    now = datetime.now(UTC)
    cert = issue_pass_certificate(
        chain(), not_before=now - timedelta(days=400), not_after=now - timedelta(days=1)
    )
    return pem(cert)


def not_yet_valid_certificate_pem() -> str:
    """A Pass Type ID leaf for the chain's key that becomes valid in a week."""
    now = datetime.now(UTC)
    cert = issue_pass_certificate(
        chain(), not_before=now + timedelta(days=7), not_after=now + timedelta(days=400)
    )
    return pem(cert)


def mismatched_key_pem() -> str:
    """A PEM private key that does not belong to the chain's Pass Type ID certificate."""
    return key_pem(other_key())


# --- a realistic pass to sign -------------------------------------------------------------------
STORE_CARD_IMAGES = {"icon": (29, 29), "logo": (160, 50), "strip": (375, 144)}  # points, as Apple sizes them


@lru_cache(maxsize=32)
def sample_png(width: int, height: int, photo: bool = False, seed: int = 0) -> bytes:
    """A PNG of this pixel size: flat brand graphics, or (``photo``) with a photo's smooth grain.

    A photo strip compresses about as badly as a real one (roughly 300 KB at 1125x432), which is what
    makes a pass heavy.
    """
    gradient = Image.linear_gradient("L").resize((width, height))
    across = gradient.transpose(Image.Transpose.ROTATE_90).resize((width, height))
    image = Image.merge("RGB", (gradient, across, Image.new("L", (width, height), 120)))
    draw = ImageDraw.Draw(image)
    for i in range(6):
        r, x, y = min(width, height) // (2 + i), (i * 97 + seed * 31) % width, (i * 53) % height
        draw.ellipse([x - r, y - r, x + r, y + r], fill=((40 * i) % 256, (70 + 30 * i) % 256, 200 - 20 * i))
    if photo:  # noise at a twelfth of the resolution, scaled up: grain without pure randomness
        size = (max(1, width // 12), max(1, height // 12))
        grain = Image.effect_noise(size, 30).resize((width, height), Image.Resampling.BICUBIC).convert("RGB")
        image = ImageChops.add(image, grain, scale=2.0, offset=-64)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def store_card_images() -> dict[str, dict[int, bytes]]:
    """Icon, logo and a photo strip of a store card at scales 1, 2 and 3 (within Apple's maxima)."""
    return {
        kind: {scale: sample_png(w * scale, h * scale, photo=kind == "strip") for scale in (1, 2, 3)}
        for kind, (w, h) in STORE_CARD_IMAGES.items()
    }


def store_card(serial: str = "TESSERA-0001", points: int = 1250, **changes: object) -> RenderedPass:
    """A loyalty store card as the core renders one: fields in every area, a QR code, a store location,
    images at three scales and French and German translations. ``changes`` override any attribute."""
    fields = (
        PassField(key="tier", area="header", label="Tier", value="Gold", role="tier"),
        PassField(
            key="points", area="primary", label="Points", value=str(points), numeric=True, role="points",
            change_message="You now have %@ points",
        ),
        PassField(key="member", area="secondary", label="Member", value="Ada Lovelace", role="member"),
        PassField(key="since", area="auxiliary", label="Member since", value="2024"),
        PassField(key="terms", area="back", label="Terms", value="Points expire after 24 months."),
        PassField(key="account", area="back", label="Your account", value="Manage your card",
                  link="https://shop.example.com/account"),
    )  # fmt: skip
    translations = {
        "fr": {"Tier": "Niveau", "Gold": "Or", "Points": "Points", "You now have %@ points":
               "Vous avez maintenant %@ points", "Member": "Membre", "Member since": "Membre depuis",
               "Terms": "Conditions", "Points expire after 24 months.": "Les points expirent après 24 mois.",
               "Your account": "Votre compte", "Manage your card": "Gérer votre carte"},
        "de": {"Tier": "Stufe", "Gold": "Gold", "Points": "Punkte", "You now have %@ points":
               "Sie haben jetzt %@ Punkte", "Member": "Mitglied", "Member since": "Mitglied seit",
               "Terms": "Bedingungen", "Points expire after 24 months.": "Punkte verfallen nach 24 Monaten.",
               "Your account": "Ihr Konto", "Manage your card": "Karte verwalten"},
    }  # fmt: skip
    values: dict[str, object] = {
        "serial": serial,
        "authentication_token": "tok-" + serial.lower().rjust(28, "0"),
        "web_service_url": "https://tessera.example.com/passes/apple",
        "style": "storeCard",
        "organization_name": "Example Shop",
        "description": "Example Shop loyalty card",
        "logo_text": "Example Shop",
        "foreground_color": "rgb(255, 255, 255)",
        "background_color": "rgb(32, 64, 128)",
        "label_color": "rgb(200, 220, 255)",
        "fields": fields,
        "barcode": PassBarcode(format="qr", message=f"M-{serial}", alt_text=serial),
        "locations": (
            PassLocation(latitude=48.8566, longitude=2.3522, relevant_text="Example Shop is near"),
        ),
        "images": store_card_images(),
        "language": "en",
        "translations": translations,
        "updated_at": datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
    }
    values.update(changes)
    return RenderedPass.model_validate(values)
