"""The recording channel plugin and its fake provider, without a Tessera server.

The fake provider (``tests/fakes/provider.py``) must hold to a real provider's rules (auth, schema,
idempotency, scripted failures); the channel, installed as a package, must map every answer to the
right :class:`DeliveryResult` and verify the provider's signed webhooks.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from core.plugin_api import (
    ChannelContext,
    DeliveryStatus,
    OutboundMessage,
    PermanentDeliveryError,
    ProfileSnapshot,
    WebhookRequest,
)
from core.plugins import get_host
from tests.fakes.provider import (
    DEFAULT_API_KEY,
    FakeProvider,
    ProviderProcess,
    Scripted,
    free_port,
    sign_webhook,
    webhook_body,
)

AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
SECRET = "whsec-test"


# --- fixtures and helpers ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def served() -> Iterator[FakeProvider]:
    """One provider served over HTTP for the whole module (each test resets it)."""
    with FakeProvider() as provider:
        yield provider


@pytest.fixture
def provider(served: FakeProvider) -> FakeProvider:
    served.reset()
    served.latency_ms = 0
    return served


@pytest.fixture
def client() -> Iterator[tuple[FakeProvider, TestClient]]:
    """A provider used in-process, as an ASGI app."""
    provider = FakeProvider()
    with TestClient(provider.app) as test_client:
        yield provider, test_client


@pytest.fixture
def plugin(recording_plugin) -> Iterator[ModuleType]:
    """The installed ``tessera_recording_channel`` module; its HTTP loop thread is closed afterwards."""
    module = importlib.import_module("tessera_recording_channel")
    yield module
    module.sending.shutdown()


def context(
    plugin: ModuleType, url: str | None, *, key: str = DEFAULT_API_KEY, **extra: Any
) -> ChannelContext:
    config = plugin.RecordingConfig(endpoint=url, api_key=key, **extra)
    return ChannelContext(tenant="t", config=config, sandbox=False, sandbox_url="http://127.0.0.1:9/sandbox",
                          public_url="http://tessera.test")  # fmt: skip


def message(n: int, address: str | None = None, body: str = "Hello") -> OutboundMessage:
    return OutboundMessage(
        delivery_id=f"d{n}", idempotency_key=f"key-{n}", profile=ProfileSnapshot(id=f"p{n}"),
        address=address or f"user{n}@example.test", template={"title": f"Title {n}", "body": body},
    )  # fmt: skip


def send(
    test_client: TestClient, to: Any = "a@example.test", key: str | None = None, **extra: Any
) -> httpx.Response:
    headers = {**AUTH, **({"Idempotency-Key": key} if key else {})}
    return test_client.post("/v1/messages", json={"to": to, "body": "Hi", **extra}, headers=headers)


# --- the fake provider -------------------------------------------------------------------------
def test_provider_accepts_a_valid_message_and_records_it(client) -> None:
    provider, test_client = client
    answer = send(test_client, key="k1", title="T", metadata={"delivery_id": "d1"})
    assert answer.status_code == 200 and answer.json()["id"].startswith("msg_")
    [recorded] = provider.messages
    assert (recorded.id, recorded.to, recorded.title, recorded.body) == (
        answer.json()["id"],
        "a@example.test",
        "T",
        "Hi",
    )
    assert recorded.metadata == {"delivery_id": "d1"} and recorded.idempotency_key == "k1"
    assert [attempt.status for attempt in provider.attempts] == [200]


def test_provider_requires_the_api_key(client) -> None:
    provider, test_client = client
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {DEFAULT_API_KEY}"}):
        answer = test_client.post(
            "/v1/messages", json={"to": "a@example.test", "body": "Hi"}, headers=headers
        )
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized"
    assert provider.messages == [] and len(provider.attempts) == 3


def test_provider_enforces_the_request_schema(client) -> None:
    provider, test_client = client
    assert send(test_client, to="not-an-address").json()["error"]["code"] == "invalid_recipient"
    assert send(test_client, to=None).json()["error"]["code"] == "invalid_recipient"
    assert send(test_client, body="").json()["error"]["code"] == "invalid_request"
    assert send(test_client, title=42).json()["error"]["code"] == "invalid_request"
    assert send(test_client, metadata=[1]).json()["error"]["code"] == "invalid_request"
    malformed = test_client.post("/v1/messages", content=b"{not json", headers=AUTH)
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "invalid_request"
    assert provider.messages == [] and {a.status for a in provider.attempts} == {400}


def test_provider_answers_a_repeated_idempotency_key_once(client) -> None:
    provider, test_client = client
    first, again = send(test_client, key="same"), send(test_client, key="same")
    other = send(test_client, key="other")
    assert first.json() == again.json() != other.json()
    assert len(provider.messages) == 2 and len(provider.attempts) == 3 and provider.stats()["replays"] == 1
    reused = send(test_client, key="same", to="someone-else@example.test")
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
    assert len(provider.messages) == 2


def test_provider_scripted_failures(client) -> None:
    provider, test_client = client
    provider.fail_next(2, status=429, retry_after=3)
    for _ in range(2):
        limited = send(test_client, key="k")
        assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
        assert limited.json()["error"]["code"] == "rate_limited"
    assert send(test_client, key="k").status_code == 200  # an error is not kept under the key
    provider.reject("bad@example.test")
    assert [send(test_client, to="bad@example.test").status_code for _ in range(2)] == [400, 400]
    provider.script("flaky@example.test", Scripted(503, retry_after=0.5), Scripted(500))
    flaky = [send(test_client, to="flaky@example.test") for _ in range(3)]
    assert [answer.status_code for answer in flaky] == [503, 500, 200]
    assert (
        flaky[0].headers["retry-after"] == "0.5"
        and flaky[0].json()["error"]["code"] == "provider_unavailable"
    )
    assert provider.attempts_for("flaky@example.test") == 3 and provider.attempts_for("bad@example.test") == 2
    assert [m.to for m in provider.messages] == ["a@example.test", "flaky@example.test"]


def test_provider_is_scripted_and_read_over_http(client) -> None:
    provider, test_client = client
    assert test_client.post("/_control/fail_next", json={"count": 1, "status": 503}).status_code == 200
    assert test_client.post("/_control/reject", json={"addresses": ["x@example.test"]}).status_code == 200
    script = {"address": "y@example.test", "responses": [{"status": 429, "retry_after": 2}]}
    assert test_client.post("/_control/script", json=script).status_code == 200
    assert test_client.post("/_control/nope", json={}).status_code == 404
    assert test_client.post("/_control/script", json={"address": "z"}).status_code == 400
    statuses = [
        send(test_client, to=to).status_code for to in ("a@t.test", "x@example.test", "y@example.test")
    ]
    assert statuses == [503, 400, 429]
    assert send(test_client, to="y@example.test").status_code == 200
    recorded = test_client.get("/_recorded").json()
    assert [m["to"] for m in recorded["messages"]] == ["y@example.test"]
    assert recorded["attempt_counts"] == {"a@t.test": 1, "x@example.test": 1, "y@example.test": 2}
    assert test_client.get("/_stats").json()["statuses"] == {"503": 1, "400": 1, "429": 1, "200": 1}
    assert test_client.post("/_control/reset", json={}).status_code == 200 and provider.attempts == []


def test_provider_runs_as_a_process_of_its_own() -> None:
    with ProviderProcess(port=free_port(), latency_ms=1, api_key="process-key") as provider:
        provider.control("fail_next", count=1, status=429, retry_after=1)
        headers = {"Authorization": "Bearer process-key", "Idempotency-Key": "k"}
        statuses = [
            httpx.post(
                f"{provider.url}/v1/messages", json={"to": "a@example.test", "body": "Hi"}, headers=headers
            )
            for _ in range(3)
        ]
        assert [answer.status_code for answer in statuses] == [429, 200, 200]
        assert provider.stats()["accepted"] == 1 and provider.stats()["attempts"] == 3
        assert provider.recorded()["messages"][0]["idempotency_key"] == "k"


# --- the channel -------------------------------------------------------------------------------
def test_the_package_registers_the_channel(plugin) -> None:
    info = get_host().plugins["recording_channel"]
    assert not info.broken, info.error
    assert info.distribution == "tessera-recording-channel" and info.channels == ["recording_channel"]
    channel = get_host().channels["recording_channel"].item
    assert channel.label == "Recording channel" and channel.capabilities.webhooks
    assert channel.capabilities.address_identifier == "email"


def test_config_and_template_refuse_unknown_or_invalid_fields(plugin) -> None:
    with pytest.raises(ValueError):
        plugin.RecordingConfig(api_key="k", region="eu")
    with pytest.raises(ValueError):
        plugin.RecordingTemplate(body="")
    with pytest.raises(ValueError):
        plugin.RecordingTemplate(body="x", title="t" * 201)


def test_preview_is_escaped(plugin) -> None:
    channel = plugin.RecordingChannel()
    template = plugin.RecordingTemplate(title="<b>Sale</b>", body="Tom & Jerry")
    preview = channel.render_preview(context(plugin, None), template, ProfileSnapshot(id="p"))
    assert "class='recording-title'>&lt;b&gt;Sale&lt;/b&gt;<" in preview.html
    assert "class='recording-body'>Tom &amp; Jerry<" in preview.html


def test_deliver_sends_each_message_with_key_and_idempotency(plugin, provider) -> None:
    batch = [message(n) for n in range(5)]
    results = plugin.RecordingChannel().deliver(context(plugin, provider.url), batch)
    by_id = {result.delivery_id: result for result in results}
    assert set(by_id) == {m.delivery_id for m in batch}
    recorded = {m.metadata["delivery_id"]: m for m in provider.messages}
    for sent in batch:
        result, seen = by_id[sent.delivery_id], recorded[sent.delivery_id]
        assert result.status == DeliveryStatus.sent and result.provider_id == seen.id
        assert (seen.to, seen.title, seen.body) == (sent.address, sent.template["title"], "Hello")
        assert seen.idempotency_key == sent.idempotency_key
    # The same batch again (a retry after a crash) reaches the provider, which records it once.
    again = plugin.RecordingChannel().deliver(context(plugin, provider.url), batch)
    assert {r.provider_id for r in again} == {r.provider_id for r in results} and len(provider.messages) == 5


def test_deliver_maps_rate_limits_outages_and_rejections(plugin, provider) -> None:
    provider.script("limited@example.test", Scripted(429, retry_after=2))
    provider.script("down@example.test", Scripted(503, retry_after=0.5))
    provider.script("broken@example.test", Scripted(500))
    provider.reject("bad@example.test")
    addresses = ["limited@example.test", "down@example.test", "broken@example.test", "bad@example.test", None]
    batch = [message(n, address) for n, address in enumerate(addresses)]
    results = {
        r.delivery_id: r for r in plugin.RecordingChannel().deliver(context(plugin, provider.url), batch)
    }
    limited, down, broken, bad, fine = (results[f"d{n}"] for n in range(5))
    assert (limited.status, limited.reason_code, limited.retryable, limited.retry_after) == (
        DeliveryStatus.failed, "rate_limited", True, 2.0)  # fmt: skip
    assert (down.status, down.reason_code, down.retryable, down.retry_after) == (
        DeliveryStatus.failed, "provider_unavailable", True, 0.5)  # fmt: skip
    assert (broken.reason_code, broken.retryable, broken.retry_after) == ("provider_unavailable", True, None)
    assert (bad.status, bad.reason_code, bad.retryable) == (DeliveryStatus.failed, "invalid_recipient", False)
    assert bad.detail == "Recipient bad@example.test is rejected."
    assert fine.status == DeliveryStatus.sent
    # The core retries the retryable ones: they go through, and each is recorded once.
    retried = plugin.RecordingChannel().deliver(context(plugin, provider.url), batch[:3])
    assert {r.status for r in retried} == {DeliveryStatus.sent}
    assert provider.attempts_for("limited@example.test") == 2
    assert sorted(m.to for m in provider.messages) == sorted(
        a or "user4@example.test" for a in addresses if a != "bad@example.test"
    )


def test_deliver_refuses_a_bad_api_key_for_the_whole_batch(plugin, provider) -> None:
    with pytest.raises(PermanentDeliveryError) as refused:
        plugin.RecordingChannel().deliver(
            context(plugin, provider.url, key="wrong"), [message(1), message(2)]
        )
    assert refused.value.reason_code == "unauthorized" and provider.messages == []


def test_deliver_without_a_provider_is_retryable(plugin, monkeypatch, provider) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    results = plugin.RecordingChannel().deliver(context(plugin, closed), [message(n) for n in range(3)])
    assert {(r.status, r.reason_code, r.retryable) for r in results} == {
        (DeliveryStatus.failed, "provider_unavailable", True)}  # fmt: skip
    monkeypatch.setattr(plugin.sending, "REQUEST_TIMEOUT", 0.1)
    provider.latency_ms = 1000
    [timed_out] = plugin.RecordingChannel().deliver(context(plugin, provider.url), [message(9)])
    assert (timed_out.reason_code, timed_out.retryable) == ("provider_unavailable", True)


def test_deliver_needs_an_endpoint_or_test_mode(plugin, provider) -> None:
    channel = plugin.RecordingChannel()
    for ctx in (context(plugin, None), ChannelContext("t", None, False, "http://x", "http://x")):
        with pytest.raises(PermanentDeliveryError) as refused:
            channel.deliver(ctx, [message(1)])
        assert refused.value.reason_code == "not_configured"
    # In test mode the channel sends to its sandbox URL, even with an endpoint set (the contract's rule).
    config = plugin.RecordingConfig(endpoint="http://127.0.0.1:9", api_key=DEFAULT_API_KEY)
    ctx = ChannelContext("t", config, True, provider.url + "/", "http://tessera.test")
    [result] = channel.deliver(ctx, [message(1)])
    assert result.status == DeliveryStatus.sent and provider.messages[0].to == "user1@example.test"


def test_the_sandbox_is_the_fake_provider_accepting_any_key(plugin) -> None:
    with TestClient(plugin.RecordingChannel().sandbox_app()) as sandbox:
        headers = {"Authorization": "Bearer any-tenant-key"}
        assert sandbox.post(
            "/v1/messages", json={"to": "a@example.test", "body": "Hi"}, headers=headers
        ).is_success
        assert (
            sandbox.post("/v1/messages", json={"to": "a", "body": "Hi"}, headers=headers).status_code == 400
        )
        assert sandbox.post("/v1/messages", json={"to": "a@example.test", "body": "Hi"}).status_code == 401


def test_batches_are_sent_concurrently_from_several_threads(plugin, provider) -> None:
    provider.latency_ms = 20  # long enough for requests of both threads to overlap
    channel, ctx = plugin.RecordingChannel(), context(plugin, provider.url)
    outcome: dict[int, list[Any]] = {}

    def deliver(part: int) -> None:
        outcome[part] = channel.deliver(ctx, [message(part * 1000 + n) for n in range(100)])

    threads = [threading.Thread(target=deliver, args=(part,)) for part in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert provider.most_in_flight > 2  # more than one request per thread at a time, and both threads
    assert [r.status for part in outcome.values() for r in part] == [DeliveryStatus.sent] * 200
    assert len(provider.messages) == 200


# --- webhooks ----------------------------------------------------------------------------------
def hook(body: bytes, signature: str | None) -> WebhookRequest:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["X-Recording-Signature"] = signature
    return WebhookRequest(method="POST", headers=headers, query={}, body=body)


def test_a_signed_webhook_becomes_events(plugin) -> None:
    body = webhook_body(
        {"id": "msg_1", "status": "delivered", "at": "2025-03-01T10:00:00Z"},
        {"id": "msg_2", "status": "failed", "at": "2025-03-01T10:00:01+00:00", "reason": "mailbox_full"},
    )
    answer = plugin.RecordingChannel().handle_webhook(
        context(plugin, None, webhook_secret=SECRET), hook(body, sign_webhook(body, SECRET))
    )
    assert answer.status_code == 200
    delivered, failed = answer.events
    assert (delivered.status, delivered.provider_id) == (DeliveryStatus.delivered, "msg_1")
    assert delivered.occurred_at == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    assert (failed.status, failed.provider_id, failed.reason_code) == (
        DeliveryStatus.failed,
        "msg_2",
        "mailbox_full",
    )


def test_webhooks_are_refused_unsigned_or_malformed(plugin) -> None:
    channel, ctx = plugin.RecordingChannel(), context(plugin, None, webhook_secret=SECRET)
    body = webhook_body({"id": "msg_1", "status": "read", "at": "2025-03-01T10:00:00Z"})
    assert channel.handle_webhook(ctx, hook(body, None)).status_code == 401
    assert channel.handle_webhook(ctx, hook(body, sign_webhook(body, "other"))).status_code == 401
    assert channel.handle_webhook(ctx, hook(body + b" ", sign_webhook(body, SECRET))).status_code == 401
    for bad in (b"{not json", webhook_body({"id": "msg_1", "status": "exploded", "at": "2025-03-01"}), b"[]"):
        answer = channel.handle_webhook(ctx, hook(bad, sign_webhook(bad, SECRET)))
        assert answer.status_code == 400 and answer.events == []
    # Without a secret in the config, unsigned callbacks are taken; without a config, none are.
    unsigned = channel.handle_webhook(context(plugin, None), hook(body, None))
    assert unsigned.status_code == 200 and unsigned.events[0].status == DeliveryStatus.read
    assert (
        channel.handle_webhook(ChannelContext("t", None, False, "", ""), hook(body, None)).status_code == 401
    )
