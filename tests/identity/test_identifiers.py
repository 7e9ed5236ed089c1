"""How identifier values are normalized before identity resolution compares them."""

from __future__ import annotations

import pytest

from core.identity.identifiers import (
    CORE_IDENTIFIER_TYPES,
    normalize,
    normalize_email,
    normalize_phone,
)
from core.plugin_api import IdentifierType


# --- email -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("ann@example.com", "ann@example.com"),
        ("  Ann.Lee@Example.COM \n", "ann.lee@example.com"),
        ("\tBOB+news@mail.example.co.uk ", "bob+news@mail.example.co.uk"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("x@xn--bcher-kva.example", "x@xn--bcher-kva.example"),
        ("a.b+tag@gmail.com", "a.b+tag@gmail.com"),  # provider tricks are not folded
    ],
)
def test_emails_are_trimmed_and_lower_cased(raw: str, canonical: str) -> None:
    assert normalize_email(raw) == canonical
    assert normalize(CORE_IDENTIFIER_TYPES, "email", raw) == canonical


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "cannot be empty"),
        ("   ", "cannot be empty"),
        ("ann.example.com", "exactly one '@'"),
        ("ann@@example.com", "exactly one '@'"),
        ("a@b@example.com", "exactly one '@'"),
        ("ann lee@example.com", "cannot contain spaces"),
        ("Ann <ann@example.com>", "cannot contain spaces"),
        ("@example.com", "nothing before the '@'"),
        ("ann@", "nothing after the '@'"),
        ("ann@localhost", "not a valid domain"),
        ("ann@example", "not a valid domain"),
        ("ann@example.c", "not a valid domain"),
        ("ann@example.123", "not a valid domain"),
        ("ann@-example.com", "not a valid domain"),
        ("ann@example-.com", "not a valid domain"),
        ("ann@exa_mple.com", "not a valid domain"),
        ("ann@example..com", "not a valid domain"),
        ("ann@example.com.", "not a valid domain"),
        ("ann@[192.168.0.1]", "not a valid domain"),
        (".ann@example.com", "before the '@' may only hold"),
        ("ann.@example.com", "before the '@' may only hold"),
        ("ann..lee@example.com", "before the '@' may only hold"),
        ('"ann"@example.com', "before the '@' may only hold"),
        ("ann(x)@example.com", "before the '@' may only hold"),
        ("a" * 65 + "@example.com", "at most 64"),
        ("a@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + "." + "e" * 63 + ".com", "at most 254"),
        ("ann@exämple.com", "non-ASCII"),
        ("ännа@example.com", "non-ASCII"),
    ],
)
def test_invalid_emails_are_refused_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(ValueError) as refused:
        normalize_email(raw)
    assert reason in str(refused.value)


def test_an_email_must_be_text() -> None:
    with pytest.raises(ValueError, match="must be text"):
        normalize_email(42)  # type: ignore[arg-type]


# --- phone -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "region", "canonical"),
    [
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("01.42.68.53.00", "FR", "+33142685300"),
        ("0033 6 12 34 56 78", "FR", "+33612345678"),
        ("+33 6 12 34 56 78", "US", "+33612345678"),  # an international number ignores the region
        ("(650) 253-0000", "US", "+16502530000"),
        ("650.253.0000", "us", "+16502530000"),  # region codes are case-insensitive
        ("+1 650 253 0000", "FR", "+16502530000"),
        ("+1 650 253 0000", None, "+16502530000"),
        ("  +44 20 7946 0958  ", "US", "+442079460958"),
    ],
)
def test_phones_become_e164_in_the_default_region(raw: str, region: str | None, canonical: str) -> None:
    assert normalize_phone(raw, region) == canonical


def test_the_phone_type_reads_national_numbers_as_us_numbers() -> None:
    assert normalize(CORE_IDENTIFIER_TYPES, "phone", "(650) 253-0000") == "+16502530000"
    assert normalize_phone("(650) 253-0000") == "+16502530000"
    with pytest.raises(ValueError, match="not a valid phone number"):
        normalize(CORE_IDENTIFIER_TYPES, "phone", "06 12 34 56 78")  # a French mobile, read as US


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("", "US", "cannot be empty"),
        ("hello", "US", "is not a phone number"),
        ("12345", "US", "not a valid phone number"),
        ("+1 200 555 0100", "US", "not a valid phone number"),  # no US area code starts with 2-0-0
        ("06 12 34 56", "FR", "not a valid phone number"),  # too short for France
        ("06 12 34 56 78", None, "no country code"),
        ("+999 1234 5678", "US", "unknown country code"),
        ("06 12 34 56 78", "XX", "not a known region"),
    ],
)
def test_invalid_phones_are_refused_with_a_reason(raw: str, region: str | None, reason: str) -> None:
    with pytest.raises(ValueError) as refused:
        normalize_phone(raw, region)
    assert reason in str(refused.value)


# --- user ids and anonymous ids ------------------------------------------------------------------
@pytest.mark.parametrize("type_key", ["user_id", "anonymous_id"])
def test_opaque_ids_are_only_trimmed(type_key: str) -> None:
    assert normalize(CORE_IDENTIFIER_TYPES, type_key, "  Cust-0042 ") == "Cust-0042"
    assert normalize(CORE_IDENTIFIER_TYPES, type_key, "x" * 200) == "x" * 200


@pytest.mark.parametrize("type_key", ["user_id", "anonymous_id"])
@pytest.mark.parametrize(("raw", "reason"), [("", "cannot be empty"), (" \t ", "cannot be empty")])
def test_empty_ids_are_refused(type_key: str, raw: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalize(CORE_IDENTIFIER_TYPES, type_key, raw)


@pytest.mark.parametrize("type_key", ["user_id", "anonymous_id"])
def test_overlong_ids_are_refused(type_key: str) -> None:
    with pytest.raises(ValueError, match="at most 200 characters"):
        normalize(CORE_IDENTIFIER_TYPES, type_key, "x" * 201)


# --- the registry ----------------------------------------------------------------------------------
def test_the_core_types_declare_their_resolution_rules() -> None:
    rules = {
        key: (kind.unique_per_profile, kind.merges_known_profiles)
        for key, kind in CORE_IDENTIFIER_TYPES.items()
    }
    assert rules == {
        "email": (False, True),
        "phone": (False, True),
        "user_id": (True, True),
        "anonymous_id": (False, False),
        "pass_serial": (False, False),  # a wallet pass's serial names its holder, never merges two people
    }
    assert all(
        isinstance(kind, IdentifierType) and kind.key == key for key, kind in CORE_IDENTIFIER_TYPES.items()
    )


def test_an_unknown_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown identifier type 'fax'"):
        normalize(CORE_IDENTIFIER_TYPES, "fax", "+33 1 00 00 00 00")


def test_a_plugin_type_normalizes_with_its_own_function() -> None:
    types = {**CORE_IDENTIFIER_TYPES, "pass_serial": IdentifierType("pass_serial", "Pass serial", str.upper)}
    assert normalize(types, "pass_serial", "ab12") == "AB12"
