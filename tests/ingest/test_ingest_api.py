"""The ingestion endpoints over HTTP, on SQLite and on PostgreSQL.

Every accepted event is stored (once per ``messageId``) with a ``core.process_events`` job in the
outbox; every refusal says why, and stores nothing (a batch keeps its valid events only); a write
key only ever reaches its own tenant's database.
"""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from core.db import engines
from core.tenancy.models import WriteKey
from tests.ingest.conftest import basic, jobs, stored
from web.routes.ingest import WRITE_KEY_CACHE_SECONDS

KB = 1024


def track(**fields) -> dict:
    return {"type": "track", "userId": "u-1", "event": "Clicked", **fields}


def batch_of(*events, **top) -> dict:
    return {"batch": list(events), **top}


# --- one event per call -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "columns"),
    [
        ("/v1/identify", {"userId": "u-1", "traits": {"email": "a@b.c"}}, {"traits": {"email": "a@b.c"}}),
        ("/v1/track", track(properties={"x": 1}), {"event": "Clicked", "properties": {"x": 1}}),
        ("/v1/page", {"anonymousId": "a-1", "name": "Home"}, {"name": "Home", "anonymous_id": "a-1"}),
        ("/v1/screen", {"userId": "u-1", "name": "Cart"}, {"name": "Cart"}),
        ("/v1/group", {"userId": "u-1", "groupId": "g-1", "traits": {"n": 1}}, {"group_id": "g-1"}),
        ("/v1/alias", {"userId": "u-1", "previousId": "a-1"}, {"previous_id": "a-1", "user_id": "u-1"}),
    ],
)
def test_each_call_stores_its_event(ingest, path, body, columns) -> None:
    answer = ingest.post(path, {**body, "messageId": "m-1", "timestamp": "2024-05-01T14:00:00+02:00"})

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"success": True}
    (event,) = stored(ingest.tenant)
    assert event.type.value == path.rsplit("/", 1)[1]
    assert event.message_id == "m-1"
    assert event.timestamp == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert event.status.value == "pending" and event.source == "api" and event.profile_id is None
    for column, value in columns.items():
        assert getattr(event, column) == value


def test_the_route_decides_the_type(ingest) -> None:
    assert ingest.post("/v1/track", track(type="identify")).status_code == 200
    assert [event.type.value for event in stored(ingest.tenant)] == ["track"]


def test_without_timestamp_or_message_id_the_server_fills_them(ingest) -> None:
    before = datetime.now(UTC)
    assert ingest.post("/v1/track", track(userId=12345)).status_code == 200

    (event,) = stored(ingest.tenant)
    assert event.user_id == "12345"
    assert event.timestamp == event.received_at and event.timestamp >= before.replace(microsecond=0)
    assert len(event.message_id) == 36  # a UUID4: Segment deduplicates by messageId only


def test_the_write_key_may_come_in_the_body(ingest) -> None:
    answer = ingest.post("/v1/track", track(writeKey=ingest.tenant.write_key), headers={})
    assert answer.status_code == 200, answer.text
    assert len(stored(ingest.tenant)) == 1


def test_requests_arriving_while_processing_waits_share_one_job(ingest) -> None:
    assert ingest.post("/v1/batch", batch_of(track(), track(), track())).status_code == 200
    assert ingest.post("/v1/track", track()).status_code == 200
    [job] = jobs(ingest.tenant)
    assert (job.kind, job.payload, job.status) == ("core.process_events", {}, "pending")


def test_once_processing_has_run_the_next_request_queues_a_new_job(ingest) -> None:
    from core.queue.actors import execute_job

    assert ingest.post("/v1/track", track(event="First")).status_code == 200
    [first] = jobs(ingest.tenant)
    assert execute_job("acme", first.id) == "done"
    assert {event.status for event in stored(ingest.tenant)} == {"processed"}

    assert ingest.post("/v1/track", track(event="Second")).status_code == 200
    assert [(job.id, job.status) for job in jobs(ingest.tenant)] == [
        (first.id, "done"),
        (first.id + 1, "pending"),
    ]


# --- idempotency ------------------------------------------------------------------------------


def test_the_same_message_id_is_stored_once(ingest) -> None:
    for _ in range(2):
        assert ingest.post("/v1/track", track(messageId="dup-1")).status_code == 200
    answer = ingest.post("/v1/batch", batch_of(track(messageId="dup-1"), track(messageId="new-1")))

    assert answer.json() == {"success": True, "accepted": 1, "duplicates": 1, "rejected": []}
    assert [event.message_id for event in stored(ingest.tenant)] == ["dup-1", "new-1"]
    assert len(jobs(ingest.tenant)) == 1  # the first request's job, still waiting, covers them all


def test_a_message_id_repeated_inside_a_batch_is_stored_once(ingest) -> None:
    answer = ingest.post("/v1/batch", batch_of(track(messageId="x"), track(messageId="x", event="Other")))

    assert answer.json() == {"success": True, "accepted": 1, "duplicates": 1, "rejected": []}
    assert [event.event for event in stored(ingest.tenant)] == ["Clicked"]


# --- batches ----------------------------------------------------------------------------------


def test_a_batch_keeps_its_valid_events_and_names_the_others(ingest) -> None:
    answer = ingest.post(
        "/v1/batch",
        batch_of(
            {"type": "identify", "userId": "u-1", "traits": {"a": 1}},
            {"type": "track", "userId": "u-1"},
            "not an event",
            {"type": "page", "anonymousId": "a-1", "name": "Home"},
            {"type": "click", "userId": "u-1"},
            {"userId": "u-1", "event": "No type"},
            {"type": "track", "event": "Nobody"},
        ),
    )

    assert answer.status_code == 200
    body = answer.json()
    assert (body["success"], body["accepted"], body["duplicates"]) == (True, 2, 0)
    assert body["rejected"] == [
        {"index": 1, "reason": "event is required"},
        {"index": 2, "reason": "an event must be a JSON object, not a string"},
        {"index": 4, "reason": "type 'click' is not one of identify, track, page, screen, group, alias"},
        {"index": 5, "reason": "type is required (one of identify, track, page, screen, group, alias)"},
        {"index": 6, "reason": "userId or anonymousId is required"},
    ]
    assert [event.type.value for event in stored(ingest.tenant)] == ["identify", "page"]
    assert len(jobs(ingest.tenant)) == 1


def test_a_batch_shares_its_context_integrations_and_sent_at(ingest) -> None:
    answer = ingest.post(
        "/v1/batch",
        batch_of(
            track(context={"ip": "10.0.0.1"}),
            track(integrations={"All": False}, sentAt="2024-05-01T00:00:09Z"),
            context={"ip": "10.0.0.9", "library": {"name": "http"}},
            integrations={"All": True, "Mixpanel": False},
            sentAt="2024-05-01T00:00:00Z",
        ),
    )

    assert answer.json()["accepted"] == 2
    first, second = stored(ingest.tenant)
    assert first.context == {"ip": "10.0.0.1", "library": {"name": "http"}}  # the event's own wins
    assert second.context == {"ip": "10.0.0.9", "library": {"name": "http"}}
    assert first.integrations == {"All": True, "Mixpanel": False}
    assert second.integrations == {"All": False, "Mixpanel": False}
    assert first.sent_at == datetime(2024, 5, 1, tzinfo=UTC)
    assert second.sent_at == datetime(2024, 5, 1, 0, 0, 9, tzinfo=UTC)


def test_a_batch_where_nothing_is_valid_stores_nothing(ingest) -> None:
    answer = ingest.post("/v1/batch", batch_of({"type": "track"}, 5))

    assert answer.status_code == 200
    assert answer.json()["accepted"] == 0 and len(answer.json()["rejected"]) == 2
    assert stored(ingest.tenant) == [] and jobs(ingest.tenant) == []


def test_a_gzipped_batch_is_accepted(ingest) -> None:
    body = gzip.compress(json.dumps(batch_of(track(), track())).encode())
    answer = ingest.post("/v1/batch", content=body, headers={**ingest.auth, "Content-Encoding": "gzip"})

    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 2


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content", "status", "reason"),
    [
        ("/v1/track", b"{not json", 400, "not valid JSON"),
        ("/v1/track", b"", 400, "not valid JSON"),
        ("/v1/track", b'[{"userId": "u-1", "event": "x"}]', 400, "must be a JSON object"),
        ("/v1/batch", b'[{"type": "track"}]', 400, "must be a JSON object"),
        ("/v1/track", b'{"userId": "u", "event": "x", "properties": {"n": NaN}}', 400, "not valid JSON"),
        ("/v1/batch", b'{"batch": {"type": "track"}}', 400, '"batch": an array'),
        ("/v1/batch", b'{"batch": [], "context": "web"}', 400, "context must be an object"),
        ("/v1/batch", b'{"batch": [], "sentAt": "yesterday"}', 400, "sentAt"),
        ("/v1/identify", b'{"userId": "u-1", "traits": "vip"}', 400, "traits must be an object"),
        ("/v1/identify", b'{"traits": {"a": 1}}', 400, "userId or anonymousId is required"),
        ("/v1/track", b'{"userId": "u-1"}', 400, "event is required"),
        ("/v1/track", b'{"userId": "u-1", "event": ""}', 400, "event must not be empty"),
        ("/v1/track", b'{"userId": true, "event": "x"}', 400, "userId must be a string or a number"),
        ("/v1/track", b'{"userId": "u", "event": "x", "timestamp": "2024-13-45"}', 400, "not an ISO-8601"),
        ("/v1/track", b'{"userId": "u", "event": "x", "timestamp": 1714564800}', 400, "ISO-8601"),
        ("/v1/group", b'{"userId": "u-1"}', 400, "groupId is required"),
        ("/v1/alias", b'{"previousId": "a-1", "anonymousId": "a-2"}', 400, "userId is required"),
        ("/v1/alias", b'{"userId": "u-1"}', 400, "previousId is required"),
        ("/v1/track", b'{"userId": "u\\u0000", "event": "x"}', 400, "NUL"),
        ("/v1/track", b'{"userId": "u", "event": "x", "properties": {"a": "\\u0000"}}', 400, "NUL"),
        ("/v1/track", b'{"userId": "u", "event": "x", "properties": {"a": "\\ud800"}}', 400, "surrogate"),
        ("/v1/track", b'{"userId": "' + b"u" * 300 + b'", "event": "x"}', 400, "longer than 255"),
    ],
)
def test_malformed_input_is_refused_with_the_reason(ingest, path, content, status, reason) -> None:
    answer = ingest.post(path, content=content, headers={**ingest.auth, "Content-Type": "application/json"})

    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["success"] is False and body["code"] and reason in body["message"], body
    assert stored(ingest.tenant) == [] and jobs(ingest.tenant) == []


def test_an_event_over_32_kb_is_refused_with_413(ingest) -> None:
    answer = ingest.post("/v1/track", track(properties={"blob": "x" * (32 * KB)}))

    assert answer.status_code == 413
    assert "32 KB" in answer.json()["message"]
    assert stored(ingest.tenant) == []


def test_an_event_over_32_kb_inside_a_batch_is_rejected_alone(ingest) -> None:
    answer = ingest.post("/v1/batch", batch_of(track(properties={"blob": "x" * (32 * KB)}), track()))

    assert answer.status_code == 200
    assert answer.json()["rejected"] == [{"index": 0, "reason": "the event is larger than 32 KB"}]
    assert [event.event for event in stored(ingest.tenant)] == ["Clicked"]


def test_a_batch_over_500_kb_is_refused_with_413(ingest) -> None:
    events = [track(properties={"blob": "x" * (20 * KB)}) for _ in range(26)]  # each fine, 520 KB in all
    answer = ingest.post("/v1/batch", batch_of(*events))

    assert answer.status_code == 413
    assert "500 KB" in answer.json()["message"]
    assert stored(ingest.tenant) == []


def test_a_body_without_length_is_read_no_further_than_the_limit(ingest) -> None:
    def chunks():
        yield b'{"batch": ['
        for _ in range(600):
            yield b'{"type": "track", "userId": "u", "event": "' + b"x" * 1000 + b'"},'
        yield b"{}]}"

    answer = ingest.post("/v1/batch", content=chunks())  # chunked: no Content-Length to check first

    assert answer.status_code == 413
    assert stored(ingest.tenant) == []


def test_a_gzip_bomb_is_refused_with_413(ingest) -> None:
    body = gzip.compress(b'{"batch": [], "pad": "' + b"x" * (2 * 1024 * KB) + b'"}')
    assert len(body) < 32 * KB
    answer = ingest.post("/v1/batch", content=body, headers={**ingest.auth, "Content-Encoding": "gzip"})

    assert answer.status_code == 413


@pytest.mark.parametrize(("content", "encoding", "status"), [(b"not gzip", "gzip", 400), (b"{}", "br", 415)])
def test_undecodable_bodies_are_refused(ingest, content, encoding, status) -> None:
    answer = ingest.post("/v1/batch", content=content, headers={**ingest.auth, "Content-Encoding": encoding})
    assert answer.status_code == status
    assert answer.json()["success"] is False


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("wk_unknown"),
        {"Authorization": "Basic not-base64!"},
        {"Authorization": "Bearer wk_x"},
    ],
    ids=["missing", "unknown", "malformed", "not-basic"],
)
def test_without_a_valid_write_key_nothing_is_stored(ingest, headers) -> None:
    for path, body in (("/v1/track", track()), ("/v1/batch", batch_of(track()))):
        answer = ingest.post(path, body, headers=headers)

        assert answer.status_code == 401, answer.text
        assert answer.json()["success"] is False and "write key" in answer.json()["message"]
    assert ingest.post("/v1/track", track(writeKey="wk_unknown"), headers={}).status_code == 401
    assert stored(ingest.tenant) == []


def test_a_revoked_write_key_stops_working(ingest) -> None:
    assert ingest.post("/v1/track", track()).status_code == 200
    with engines.control_session() as session:
        key = session.exec(select(WriteKey).where(WriteKey.tenant_id == ingest.tenant.tenant.id)).one()
        key.revoked_at = datetime.now(UTC)
        session.add(key)
        session.commit()

    time.sleep(WRITE_KEY_CACHE_SECONDS)  # a server process remembers a known key that long
    answer = ingest.post("/v1/track", track(event="After revocation"))

    assert answer.status_code == 401
    assert [event.event for event in stored(ingest.tenant)] == ["Clicked"]


# --- tenant isolation -------------------------------------------------------------------------


def test_a_write_key_stores_in_its_own_tenant_only(installation, ingest) -> None:
    globex = installation.tenant("globex")

    answers = [
        ingest.post("/v1/track", track(event="For acme")),
        ingest.post("/v1/track", track(event="For globex"), headers=basic(globex.write_key)),
        ingest.post(
            "/v1/batch", batch_of(track(event="Batch for globex"), writeKey=globex.write_key), headers={}
        ),
    ]

    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert [event.event for event in stored(ingest.tenant)] == ["For acme"]
    assert [event.event for event in stored(globex)] == ["For globex", "Batch for globex"]
    assert len(jobs(ingest.tenant)) == 1 and len(jobs(globex)) == 1
