"""The core identifier types and the normalization of their values.

Every identifier value goes through its type's ``normalize`` before it is stored or compared, so
that ``" Ann@Example.COM "`` and ``"ann@example.com"`` are the same identifier. A normalizer returns
the canonical text or raises :class:`ValueError` with a reason a person can act on.

================  ==========================  ==================  =====================
type              canonical form              unique_per_profile  merges_known_profiles
================  ==========================  ==================  =====================
``email``         trimmed, lower-case         no                  yes
``phone``         E.164 (``+33612345678``)    no                  yes
``user_id``       trimmed, case kept          **yes**             yes
``anonymous_id``  trimmed, case kept          no                  **no** (weak)
================  ==========================  ==================  =====================

Choices worth knowing:

- **Email** is checked with a deliberately strict regex (``email-validator`` is not a dependency):
  an ASCII dot-atom local part (at most 64 characters), ``@``, a domain of at least two
  letter-digit-hyphen labels (each at most 63 characters, no leading or trailing hyphen) ending in
  an alphabetic top-level domain or an ``xn--`` label; at most 254 characters in all. The whole
  address is lower-cased (local parts are case-sensitive in theory, never in practice). Not
  accepted: quoted local parts, IP-literal domains, display names (``Ann <ann@x.com>``), trailing
  dots, and non-ASCII (internationalized) addresses. Provider tricks such as Gmail's dots and
  ``+tags`` are *not* folded: ``a.b+news@gmail.com`` stays a different identifier from
  ``ab@gmail.com``.
- **Phone** numbers are parsed by ``phonenumbers`` (Google's libphonenumber metadata) and must be
  *valid*, not merely possible, for their country. A number without a ``+`` country code is read
  in the default region: :func:`normalize_phone` takes it as an argument (a tenant passes its own
  country), the ``phone`` type's ``normalize`` uses ``"US"``. Extensions are dropped by E.164.
  Validity follows the library's metadata, so a library upgrade can change which numbers pass.
- **User ids and anonymous ids** are opaque: only surrounding whitespace is removed, case is kept,
  and they must be non-empty and at most 200 characters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import phonenumbers

from core.plugin_api import IdentifierType

MAX_TOKEN_LENGTH = 200
"""The longest user id or anonymous id accepted, in characters."""

# --- email -----------------------------------------------------------------------------------
_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART = re.compile(rf"{_ATOM}(?:\.{_ATOM})*", re.ASCII)
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_TOP_LEVEL = r"(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})"
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)+{_TOP_LEVEL}", re.ASCII)


def _text(value: object, what: str) -> str:
    """``value`` stripped of surrounding whitespace; refuses non-text and empty values."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be text, not {type(value).__name__}")
    text = value.strip()
    if not text:
        raise ValueError(f"{what} cannot be empty")
    return text


def normalize_email(value: str) -> str:
    """The canonical form of an email address: trimmed and lower-cased, after validation.

    Raises :class:`ValueError` saying what is wrong (see the module docstring for the rules).
    """
    text = _text(value, "an email address")
    if not text.isascii():
        raise ValueError(f"{text!r}: internationalized (non-ASCII) email addresses are not supported")
    if any(char.isspace() for char in text):
        raise ValueError(f"{text!r}: an email address cannot contain spaces")
    if text.count("@") != 1:
        raise ValueError(f"{text!r}: an email address needs exactly one '@'")
    address = text.lower()
    if len(address) > 254:
        raise ValueError(f"{text!r}: an email address is at most 254 characters long")
    local, domain = address.split("@")
    if not local:
        raise ValueError(f"{text!r}: nothing before the '@'")
    if len(local) > 64:
        raise ValueError(f"{text!r}: the part before the '@' is at most 64 characters long")
    if not _LOCAL_PART.fullmatch(local):
        raise ValueError(
            f"{text!r}: the part before the '@' may only hold letters, digits, and !#$%&'*+/=?^_`{{|}}~- "
            "with single dots between them"
        )
    if not domain:
        raise ValueError(f"{text!r}: nothing after the '@'")
    if not _DOMAIN.fullmatch(domain):
        raise ValueError(f"{text!r}: {domain!r} is not a valid domain name")
    return address


# --- phone -----------------------------------------------------------------------------------
def normalize_phone(value: str, default_region: str | None = "US") -> str:
    """The E.164 form (``+33612345678``) of a valid phone number.

    A number written without a ``+`` country code (``06 12 34 56 78``) is read as a number of
    ``default_region``, an ISO 3166 country code such as ``"FR"``; pass ``None`` to accept only
    international numbers. Raises :class:`ValueError` when the text is not a phone number, or not
    a valid one for its country.
    """
    text = _text(value, "a phone number")
    region = default_region.upper() if default_region is not None else None
    if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{default_region!r} is not a known region code (use ISO codes such as 'US', 'FR')")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            if region is None:
                raise ValueError(f"{text!r}: no country code; write it as +<country code> <number>") from exc
            raise ValueError(f"{text!r}: unknown country code") from exc
        raise ValueError(f"{text!r} is not a phone number ({exc.args[0] if exc.args else exc})") from exc
    if not phonenumbers.is_valid_number(number):
        where = phonenumbers.region_code_for_number(number) or f"country code +{number.country_code}"
        raise ValueError(f"{text!r} is not a valid phone number for {where}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _normalize_us_phone(value: str) -> str:
    """:func:`normalize_phone` with the default region ``"US"``."""
    return normalize_phone(value, "US")


# --- opaque tokens ---------------------------------------------------------------------------
def _token(value: str, what: str) -> str:
    text = _text(value, what)
    if len(text) > MAX_TOKEN_LENGTH:
        raise ValueError(f"{what} is at most {MAX_TOKEN_LENGTH} characters long (got {len(text)})")
    return text


def normalize_user_id(value: str) -> str:
    """A user id as given, without surrounding whitespace; non-empty, at most 200 characters."""
    return _token(value, "a user id")


def normalize_anonymous_id(value: str) -> str:
    """An anonymous id as given, without surrounding whitespace; non-empty, at most 200 characters."""
    return _token(value, "an anonymous id")


# --- the types -------------------------------------------------------------------------------
EMAIL = IdentifierType(
    key="email",
    label="Email",
    normalize=normalize_email,
    unique_per_profile=False,
    merges_known_profiles=True,
)
PHONE = IdentifierType(
    key="phone",
    label="Phone",
    normalize=_normalize_us_phone,
    unique_per_profile=False,
    merges_known_profiles=True,
)
USER_ID = IdentifierType(
    key="user_id",
    label="User ID",
    normalize=normalize_user_id,
    unique_per_profile=True,
    merges_known_profiles=True,
)
ANONYMOUS_ID = IdentifierType(
    key="anonymous_id",
    label="Anonymous ID",
    normalize=normalize_anonymous_id,
    unique_per_profile=False,
    merges_known_profiles=False,
)
# A wallet pass's serial: a scan of the pass at the till names the customer.
PASS_SERIAL = IdentifierType(
    key="pass_serial",
    label="Wallet pass serial",
    normalize=lambda value: _token(value, "a pass serial"),
    unique_per_profile=False,
    merges_known_profiles=False,
)

CORE_IDENTIFIER_TYPES: dict[str, IdentifierType] = {
    identifier_type.key: identifier_type
    for identifier_type in (EMAIL, PHONE, USER_ID, ANONYMOUS_ID, PASS_SERIAL)
}
"""The identifier types the core always knows, by key; plugins register more."""


def normalize(types: Mapping[str, IdentifierType], type_key: str, value: str) -> str:
    """The canonical form of ``value`` as an identifier of type ``type_key`` among ``types``.

    Raises :class:`ValueError` for an unknown type or a value the type rejects.
    """
    identifier_type = types.get(type_key)
    if identifier_type is None:
        known = ", ".join(sorted(types)) or "none"
        raise ValueError(f"unknown identifier type {type_key!r} (known types: {known})")
    return identifier_type.normalize(value)
