"""The real Segment and RudderStack Python SDKs talk to a live `tessera serve`.

Each SDK sends identify, track, page, screen, group and alias through its background consumer,
then flushes; the tenant's database must hold every event with the right fields and types. The
SDKs batch to ``/v1/batch`` (RudderStack gzips the body and puts identify traits in
``context.traits``); a wrong write key must reach the SDK's error callback as a 401 it
understands (both SDKs read ``code`` and ``message`` from the error body).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient

from tests.ingest.conftest import stored

SDKS = {
    "segment": (SegmentClient, "analytics-python"),
    "rudderstack": (RudderClient, "analytics-python"),
}
WHEN = datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=UTC)


def _client(sdk: str, write_key: str, host: str, errors: list) -> Any:
    client_class, _ = SDKS[sdk]

    def on_error(error: Exception, batch: list) -> None:
        errors.append((error, batch))

    return client_class(
        write_key=write_key, host=host, on_error=on_error, max_retries=1, upload_interval=0.05, timeout=10
    )


def _send_one_of_each(client: Any) -> dict[str, dict]:
    """Each call returns ``(queued, message)``; the messages by type."""
    calls = {
        "identify": client.identify(
            user_id=42, traits={"email": "ada@example.com", "plan": "pro"}, timestamp=WHEN
        ),
        "track": client.track(
            user_id="u-1",
            event="Order Completed",
            properties={"revenue": 12.5, "items": [{"sku": "a"}]},
            context={"ip": "203.0.113.9"},
        ),  # fmt: skip
        "page": client.page(
            anonymous_id="anon-1", category="Docs", name="Pricing", properties={"path": "/pricing"}
        ),
        "screen": client.screen(user_id="u-1", name="Home", properties={"tab": 2}),
        "group": client.group(user_id="u-1", group_id=777, traits={"name": "Acme Inc"}),
        "alias": client.alias(previous_id="anon-1", user_id="u-1"),
    }
    for kind, (queued, _message) in calls.items():
        assert queued, f"the SDK did not queue {kind}"
    return {kind: message for kind, (_, message) in calls.items()}


@pytest.mark.parametrize("sdk", sorted(SDKS))
def test_every_call_of_the_sdk_is_stored_with_its_fields(live_server, sdk) -> None:
    base, tenant = live_server
    errors: list = []
    client = _client(sdk, tenant.write_key, base, errors)
    sent = _send_one_of_each(client)
    client.flush()
    client.join()

    assert errors == []
    events = {event.type.value: event for event in stored(tenant)}
    assert sorted(events) == sorted(sent)
    for kind, message in sent.items():
        event = events[kind]
        assert event.message_id == message["messageId"]
        assert event.source == "api"
        assert event.context["library"]["name"] == SDKS[sdk][1]
        for moment in (event.timestamp, event.received_at, event.sent_at):
            assert (
                moment is not None and moment.tzinfo is not None and moment.utcoffset().total_seconds() == 0
            )
        assert isinstance(event.properties, dict) and isinstance(event.traits, dict)

    identify = events["identify"]
    assert identify.user_id == "42"  # a number as user id is stored as a string
    assert identify.traits == {"email": "ada@example.com", "plan": "pro"}
    assert identify.timestamp == WHEN

    track = events["track"]
    assert (track.user_id, track.event) == ("u-1", "Order Completed")
    assert track.properties == {"revenue": 12.5, "items": [{"sku": "a"}]}
    assert track.context["ip"] == "203.0.113.9"
    assert abs((track.received_at - track.timestamp).total_seconds()) < 60  # the SDK's own clock

    page = events["page"]
    assert (page.anonymous_id, page.user_id, page.name) == ("anon-1", None, "Pricing")
    assert page.properties == {"path": "/pricing", "category": "Docs"}

    screen = events["screen"]
    assert (screen.name, screen.properties) == ("Home", {"tab": 2})

    group = events["group"]
    assert (group.group_id, group.traits) == ("777", {"name": "Acme Inc"})

    alias = events["alias"]
    assert (alias.previous_id, alias.user_id, alias.anonymous_id) == ("anon-1", "u-1", None)
    if sdk == "rudderstack":
        assert alias.integrations == {"All": True}  # RudderStack's default, kept as sent


@pytest.mark.parametrize("sdk", sorted(SDKS))
def test_a_wrong_write_key_reaches_the_sdk_as_a_401_it_understands(live_server, sdk) -> None:
    base, tenant = live_server
    errors: list = []
    client = _client(sdk, "wk_not-a-key", base, errors)
    client.track(user_id="u-1", event="Refused")
    client.flush()
    client.join()

    assert len(errors) == 1
    error, batch = errors[0]
    assert (error.status, error.code) == (401, "invalid_write_key")
    assert "write key" in error.message
    assert [message["event"] for message in batch] == ["Refused"]
    assert stored(tenant) == []
