"""The ``signature`` file of a .pkpass: a detached CMS (PKCS#7) signature over ``manifest.json``.

Signed with the Pass Type ID certificate (SHA-256, PKCS#1 v1.5 RSA) and carrying Apple's WWDR
intermediate, as Wallet requires; DER encoded, with a signing-time attribute.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from tessera_wallet_apple.certificates import SigningIdentity

# Binary: sign the bytes as they are (no S/MIME canonical line endings, which would change the digest).
OPTIONS = [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]


def sign_manifest(manifest: bytes, identity: SigningIdentity) -> bytes:
    """The DER ``signature`` file for these exact ``manifest.json`` bytes."""
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(manifest)
        .add_signer(identity.certificate, identity.private_key, hashes.SHA256())
        .add_certificate(identity.wwdr)
        .sign(Encoding.DER, OPTIONS)
    )
