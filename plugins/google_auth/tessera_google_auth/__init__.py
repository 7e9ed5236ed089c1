"""Google service-account auth shared by Tessera's Google plugins (FCM push, Google Wallet).

A library, not a plugin: the key file parsed once (:mod:`.account`), access tokens of the JWT
bearer grant cached per account (:mod:`.tokens`), a plugin's sandbox told of an account
(:mod:`.introduce`), the fakes' token endpoint (:mod:`.fake`, needs FastAPI) and generated test
accounts (:mod:`.testkeys`).
"""

from tessera_google_auth.account import (
    GOOGLE_TOKEN_URI,
    ServiceAccount,
    ServiceAccountInvalid,
    checked_key_file,
    service_account,
)
from tessera_google_auth.introduce import introduce
from tessera_google_auth.tokens import TokenCache, TokenRefused, delivery_error

__all__ = [
    "GOOGLE_TOKEN_URI",
    "ServiceAccount",
    "ServiceAccountInvalid",
    "TokenCache",
    "TokenRefused",
    "checked_key_file",
    "delivery_error",
    "introduce",
    "service_account",
]
