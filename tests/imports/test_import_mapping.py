"""Column mapping (automatic from headers, explicit overrides, refusals) and CSV reading (delimiters,
encodings, line numbers, broken quoting) without a database."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.identity.identifiers import CORE_IDENTIFIER_TYPES
from core.imports.convert import parse_amount, parse_timestamp
from core.imports.mapping import MappingError, auto_spec, build_mapping, parse_map_options, specs
from core.imports.reader import CsvSource, ImportProblem

TYPES = sorted(CORE_IDENTIFIER_TYPES) + ["fcm_token"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Email", "email"),
        ("E-mail", "email"),
        ("EMAIL ADDRESS", "email"),
        ("customer_id", "user_id"),
        ("Customer ID", "user_id"),
        ("userId", "user_id"),
        ("id", "user_id"),
        ("Mobile", "phone"),
        ("Phone Number", "phone"),
        ("anonymous_id", "anonymous_id"),
        ("FCM token", "fcm_token"),
        ("first name", "trait:first_name"),
        ("FirstName", "trait:first_name"),
        ("Surname", "trait:last_name"),
        ("Loyalty Tier", "trait:loyalty_tier"),
        ("consent.email", "consent:email"),
        ("Consent SMS", "consent:sms"),
        ("consent.email.service", "consent:email:service"),
        ("whatsapp_opt_in", "consent:whatsapp"),
        ("Updated at", "timestamp"),
        ("consent", "ignore"),
    ],
)
def test_profile_columns_are_mapped_from_their_headers(header: str, expected: str) -> None:
    assert auto_spec(header, "profiles", TYPES) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Order ID", "order_id"),
        ("order_number", "order_id"),
        ("id", "order_id"),
        ("Total", "total"),
        ("Amount", "total"),
        ("Revenue", "revenue"),
        ("Currency", "currency"),
        ("Order Date", "timestamp"),
        ("created_at", "timestamp"),
        ("Products", "products"),
        ("SKUs", "sku"),
        ("E-Mail", "email"),
        ("Customer Number", "user_id"),
        ("Coupon", "property:coupon"),
        ("Shipping", "shipping"),
    ],
)
def test_transaction_columns_are_mapped_from_their_headers(header: str, expected: str) -> None:
    assert auto_spec(header, "transactions", TYPES) == expected


def test_explicit_mappings_win_and_automatic_ones_give_way() -> None:
    headers = ["Mail", "Email", "Nick", "Junk", "Phone", "Mobile"]
    overrides = {"mail": "email", "Nick": "trait:nickname", "JUNK": "ignore"}
    assert specs(build_mapping(headers, "profiles", TYPES, overrides)) == {
        "Mail": "email",
        "Email": "ignore",  # would be the email too: a second email column is not guessed into a trait
        "Nick": "trait:nickname",
        "Junk": "ignore",
        "Phone": "phone",
        "Mobile": "trait:mobile",  # the first phone-like column is the phone
    }


@pytest.mark.parametrize(
    ("headers", "overrides", "kind", "message"),
    [
        (["Email"], {"Nope": "email"}, "profiles", "No column 'Nope'"),
        (["Email", "Plan"], {"Plan": "plan"}, "profiles", "write trait:plan"),
        (["Email", "Mail"], {"Email": "email", "Mail": "email"}, "profiles", "both mapped to email"),
        (["Plan"], {}, "profiles", "No column is mapped to an identifier"),
        (["Email", "Total"], {}, "transactions", "order_id"),
        (["Email", "Order"], {}, "transactions", "total or revenue"),
        (["Email", "Plan"], {"Plan": "trait:consent"}, "profiles", "consent:CHANNEL"),
        (["Email", "C"], {"C": "consent:Bad Channel"}, "profiles", "consent:CHANNEL"),
        (["Email", "Order", "Total"], {"Total": "trait:x"}, "transactions", "property:"),
        (["Email"], {}, "orders", "Unknown import kind"),
    ],
)
def test_unusable_mappings_are_refused_with_the_reason(headers, overrides, kind, message) -> None:
    with pytest.raises(MappingError, match=message):
        build_mapping(headers, kind, TYPES, overrides)


def test_map_options_are_column_equals_field() -> None:
    assert parse_map_options(["E-mail address=email", "a=b=trait:x"]) == {
        "E-mail address": "email",
        "a=b": "trait:x",
    }
    with pytest.raises(MappingError, match="COLUMN=FIELD"):
        parse_map_options(["email"])


@pytest.mark.parametrize(
    ("text", "value"),
    [("19.99", 19.99), ("1,234.50", 1234.5), ("19,99", 19.99), ("1.234,50", 1234.5), ("30", 30), ("€12", 12)],
)
def test_amounts_accept_common_decimal_forms(text: str, value: float) -> None:
    assert parse_amount(text) == value


@pytest.mark.parametrize("text", ["12,3x", "abc", "1e5", "NaN", "--1", ""])
def test_amounts_refuse_what_is_not_a_number(text: str) -> None:
    with pytest.raises(ValueError):
        parse_amount(text)


def test_timestamps_are_iso_or_unix_time() -> None:
    assert parse_timestamp("2024-03-01").isoformat() == "2024-03-01T00:00:00+00:00"
    assert parse_timestamp("2024-03-01T10:00:00+01:00").isoformat() == "2024-03-01T09:00:00+00:00"
    assert parse_timestamp("1709287200").isoformat() == "2024-03-01T10:00:00+00:00"
    assert parse_timestamp("1709287200000").isoformat() == "2024-03-01T10:00:00+00:00"
    for bad in ("yesterday", "03/01/2024", "2024-13-01"):
        with pytest.raises(ValueError):
            parse_timestamp(bad)


# --- reading ---------------------------------------------------------------------------------------
def write(tmp_path: Path, content: bytes | str, name: str = "f.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_the_delimiter_is_sniffed(tmp_path: Path, delimiter: str) -> None:
    rows = [["email", "first name", "city"], ["a@x.com", "Ann", "Paris, France"], ["b@x.com", "Bob", "Lyon"]]
    text = "\n".join(delimiter.join(f'"{c}"' if "," in c else c for c in row) for row in rows) + "\n"
    source = CsvSource(write(tmp_path, text))
    assert source.delimiter == delimiter
    assert source.headers == ["email", "first name", "city"]
    assert [r.fields for r in source.records()] == rows[1:]


def test_a_byte_order_mark_is_skipped_and_crlf_lines_are_counted(tmp_path: Path) -> None:
    source = CsvSource(write(tmp_path, "\ufeffEmail;Name\r\na@x.com;Ann\r\n\r\nb@x.com;Bob\r\n"))
    assert source.headers == ["Email", "Name"]
    assert [(r.line, r.fields) for r in source.records()] == [
        (2, ["a@x.com", "Ann"]),
        (4, ["b@x.com", "Bob"]),
    ]


def test_line_numbers_follow_the_file_and_broken_rows_cost_one_row(tmp_path: Path) -> None:
    content = (
        b"email,note\n"  # 1
        b'a@x.com,"two\nlines"\n'  # 2-3: one record
        b'b@x.com,"bad "quote" here"\n'  # 4
        b'c@x.com,"never closed\n'  # 5
        b"d@x.com,fine\n"  # 6
        b"e@x.com,caf\xe9\n"  # 7: Latin-1
        b"f@x.com\n"  # 8
        b"g@x.com,last\n"  # 9
    )
    records = [
        (r.line, r.problem.split(":")[0] if r.problem else r.fields)
        for r in CsvSource(write(tmp_path, content)).records()
    ]
    assert records == [
        (2, ["a@x.com", "two\nlines"]),
        (4, "broken quoting"),
        (5, "broken quoting"),
        (6, ["d@x.com", "fine"]),
        (7, "non-UTF-8 bytes"),
        (8, "wrong column count"),
        (9, ["g@x.com", "last"]),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\n\n", "empty"),
        (b"email,Email\na,b\n", "appears twice"),
        (b"em\xffail\na\n", "not UTF-8"),
    ],
)
def test_unreadable_headers_stop_the_import(tmp_path: Path, content: bytes, message: str) -> None:
    with pytest.raises(ImportProblem, match=message):
        CsvSource(write(tmp_path, content))


def test_a_missing_file_is_a_clear_problem(tmp_path: Path) -> None:
    with pytest.raises(ImportProblem, match="No file"):
        CsvSource(tmp_path / "missing.csv")
    with pytest.raises(ImportProblem, match="folder"):
        CsvSource(tmp_path)
