"""Validation of Segment events without a database: what is accepted, how it is normalised, and
that no input, however odd, makes validation fail in any other way than with a reason."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.ingest.schemas import InvalidEvent, parse_event
from core.ingest.service import validate


@pytest.mark.parametrize(
    ("value", "expected"),
    [("abc", "abc"), (42, "42"), (42.0, "42"), (1.5, "1.5"), ("", None), (None, None)],
)
def test_identifiers_become_strings(value, expected) -> None:
    event = parse_event({"type": "track", "event": "x", "userId": value, "anonymousId": "a"})
    assert event.user_id == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T14:00:00.250+02:00", datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)),
        ("2024-05-01T12:00:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),  # no offset: UTC
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
    ],
)
def test_timestamps_become_aware_utc(text, expected) -> None:
    event = parse_event({"type": "page", "userId": "u", "timestamp": text, "sentAt": text})
    assert event.timestamp == expected and event.sent_at == expected
    assert event.timestamp.tzinfo is UTC


def test_nulls_for_objects_mean_empty_and_unknown_fields_are_dropped() -> None:
    event = parse_event(
        {"type": "screen", "userId": "u", "properties": None, "context": None, "integrations": None,
         "name": None, "category": None, "channel": "server", "originalTimestamp": "whenever"}
    )  # fmt: skip
    assert (event.properties, event.context, event.integrations) == ({}, {}, {})
    assert "channel" not in event.model_dump()


def test_identify_takes_traits_from_the_context_when_it_has_none() -> None:
    event = parse_event({"type": "identify", "userId": "u", "context": {"traits": {"plan": "pro"}}})
    assert event.traits == {"plan": "pro"}  # type: ignore[attr-defined]
    own = parse_event(
        {"type": "identify", "userId": "u", "traits": {"a": 1}, "context": {"traits": {"b": 2}}}
    )
    assert own.traits == {"a": 1}  # type: ignore[attr-defined]


def test_the_default_type_applies_only_without_a_type() -> None:
    assert parse_event({"userId": "u", "event": "x"}, "track").kind.value == "track"
    with pytest.raises(InvalidEvent, match="previousId is required"):
        parse_event({"type": "alias", "userId": "u", "event": "x"}, "track")


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event({"type": "track", "userId": "u", "properties": [1], "timestamp": "soon"})
    assert caught.value.reason.split("; ") == [
        "timestamp 'soon' is not an ISO-8601 date-time",
        "properties must be an object",
        "event is required",
    ]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    ["type", "userId", "anonymousId", "previousId", "groupId", "event", "name", "category", "messageId",
     "timestamp", "sentAt", "properties", "traits", "context", "integrations"]
)  # fmt: skip
TYPES = st.sampled_from(["identify", "track", "page", "screen", "group", "alias", "other"])


@settings(max_examples=300, deadline=None)
@given(st.lists(JSON | st.dictionaries(FIELDS, JSON | TYPES, max_size=8), max_size=6))
def test_validation_never_fails_without_a_reason(items) -> None:
    prepared = validate(items, max_event_bytes=32 * 1024)

    assert len(prepared.rows) + len(prepared.rejected) == len(items)
    assert len(prepared.encoded) == len(prepared.rows)
    for refusal in prepared.rejected:
        assert refusal["reason"] and 0 <= refusal["index"] < len(items)
    for row in prepared.rows:
        assert row["user_id"] or row["anonymous_id"] or row["type"] == "alias"
        assert row["timestamp"].tzinfo is not None
