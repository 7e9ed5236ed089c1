"""Pass update pushes reach a fake APNs over real HTTP/2 + TLS, and APNs's answers map to the right errors."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import httpx
import pytest
from tessera_wallet_apple import testchain
from tessera_wallet_apple.apns import (
    ApnsRefused,
    ApnsUnavailable,
    PushOutcome,
    close_clients,
    push_updates,
    sandbox_credential,
)
from tessera_wallet_apple.fake_apns import FakeApns, ThrowawayCA, running_fake_apns, running_sandbox
from tessera_wallet_apple.sandbox import ScriptedFailure

from core.plugin_api import ChannelContext, PermanentDeliveryError, TransientDeliveryError

TOPIC = "pass.com.shop.loyalty"
LIVE = ChannelContext(tenant="shop", config=None, sandbox=False, sandbox_url="http://unused", public_url="")


def token(number: int) -> str:
    """A well-formed device token (32 bytes, hex)."""
    return f"{number:064x}"


@pytest.fixture(scope="module")
def wwdr() -> ThrowawayCA:
    """The CA the fake trusts for client certificates (Apple's WWDR, for real)."""
    return ThrowawayCA("Test WWDR")


@pytest.fixture(scope="module")
def identity(wwdr: ThrowawayCA) -> tuple[bytes, bytes]:
    """A Pass Type ID certificate and key the fake accepts."""
    return wwdr.issue_client(f"Pass Type ID: {TOPIC}", user_id=TOPIC)


@pytest.fixture(scope="module")
def server(wwdr: ThrowawayCA) -> Iterator[FakeApns]:
    """One fake APNs for the module (starting hypercorn per test would only slow the tests)."""
    with running_fake_apns(wwdr.ca_pem) as fake:
        yield fake
    close_clients()


@pytest.fixture
def fake(server: FakeApns) -> Iterator[FakeApns]:
    """The fake with no devices marked, no failures scripted and no pushes yet."""
    server.devices.reset()
    yield server


def push(fake: FakeApns, identity: tuple[bytes, bytes], tokens: list[str]) -> PushOutcome:
    """Push to the fake as the channel pushes to APNs."""
    return push_updates(LIVE, identity, TOPIC, tokens, base_url=fake.url, ca_pem=fake.ca_pem)


def test_push_reaches_apns_over_http2_with_topic_and_empty_body(
    fake: FakeApns, identity: tuple[bytes, bytes]
) -> None:
    """Each token gets POST /3/device/{token}, apns-topic = pass type id, body {}, over HTTP/2."""
    tokens = [token(1), token(2)]
    assert push(fake, identity, tokens) == PushOutcome(sent=tokens, gone=[])
    received = fake.devices.pushes()
    assert sorted(p.token for p in received) == tokens
    assert {(p.topic, p.body, p.http_version, p.status) for p in received} == {(TOPIC, "{}", "2", 200)}


def test_many_tokens_share_one_connection_across_calls(fake: FakeApns, identity: tuple[bytes, bytes]) -> None:
    """A bulk push multiplexes on one HTTP/2 connection, and the next call reuses it."""
    tokens = [token(n) for n in range(120)]
    assert push(fake, identity, tokens + tokens[:3]).sent == tokens  # duplicates pushed once
    push(fake, identity, [token(999)])
    received = fake.devices.pushes()
    assert len(received) == 121
    assert len({p.peer for p in received}) == 1


def test_the_pass_type_id_test_chain_is_accepted() -> None:
    """The RSA chain with a WWDR-like intermediate that signs test passes also pushes."""
    chain = testchain.chain()
    with running_fake_apns(chain.ca_bundle_pem.encode()) as fake:
        identity = (chain.certificate_pem.encode(), chain.private_key_pem.encode())
        assert push(fake, identity, [token(7)]).sent == [token(7)]


def test_a_client_without_an_accepted_certificate_is_refused(fake: FakeApns) -> None:
    """The TLS layer turns away a client with no certificate or one from another CA."""
    trust_fake = ssl.create_default_context(cadata=fake.ca_pem.decode())
    with (
        pytest.raises(httpx.TransportError),
        httpx.Client(verify=trust_fake, http1=False, http2=True) as bare,
    ):
        bare.post(f"{fake.url}/3/device/{token(1)}", headers={"apns-topic": TOPIC}, content=b"{}")
    stranger = ThrowawayCA("Someone else").issue_client(f"Pass Type ID: {TOPIC}", user_id=TOPIC)
    with pytest.raises(TransientDeliveryError):
        push(fake, stranger, [token(1)])
    assert fake.devices.pushes() == []


def test_unregistered_and_bad_tokens_are_gone(fake: FakeApns, identity: tuple[bytes, bytes]) -> None:
    """410 Unregistered and 400 BadDeviceToken mean: delete the registration; a junk token is never sent."""
    fake.devices.mark_unregistered(token(2))
    fake.devices.fail_next(ScriptedFailure(400, "BadDeviceToken", token=token(3)))
    outcome = push(fake, identity, [token(1), token(2), token(3), "not/a-token"])
    assert outcome == PushOutcome(sent=[token(1)], gone=["not/a-token", token(2), token(3)])
    assert {(p.token, p.status, p.reason) for p in fake.devices.pushes()} == {
        (token(1), 200, None),
        (token(2), 410, "Unregistered"),
        (token(3), 400, "BadDeviceToken"),
    }


def test_too_many_requests_is_transient_with_retry_after_once_the_others_are_tried(
    fake: FakeApns, identity: tuple[bytes, bytes]
) -> None:
    """429 raises a transient error carrying Retry-After, after the other tokens went out."""
    fake.devices.fail_next(ScriptedFailure(429, "TooManyRequests", token=token(1), retry_after=7))
    fake.devices.mark_unregistered(token(3))
    with pytest.raises(ApnsUnavailable) as caught:
        push(fake, identity, [token(1), token(2), token(3)])
    error = caught.value
    assert isinstance(error, TransientDeliveryError)
    assert (error.reason_code, error.retry_after) == ("rate_limited", 7.0)
    assert "TooManyRequests" in str(error)
    assert error.outcome == PushOutcome(sent=[token(2)], gone=[token(3)])
    assert error.failed == [token(1)]


@pytest.mark.parametrize(("status", "reason"), [(503, "ServiceUnavailable"), (500, "InternalServerError")])
def test_apns_outage_is_transient(
    fake: FakeApns, identity: tuple[bytes, bytes], status: int, reason: str
) -> None:
    """5xx: retry later, without a delay when APNs gave none."""
    fake.devices.fail_next(ScriptedFailure(status, reason))
    with pytest.raises(ApnsUnavailable) as caught:
        push(fake, identity, [token(1)])
    assert (caught.value.reason_code, caught.value.retry_after) == ("provider_unavailable", None)


def test_forbidden_is_permanent_with_apns_reason(fake: FakeApns, identity: tuple[bytes, bytes]) -> None:
    """403 (bad certificate, topic disallowed) is permanent, says why and how to fix it, and wins over 429."""
    fake.devices.fail_next(ScriptedFailure(429, "TooManyRequests", token=token(1)))
    fake.devices.fail_next(ScriptedFailure(403, "TopicDisallowed", token=token(2)))
    with pytest.raises(ApnsRefused) as caught:
        push(fake, identity, [token(1), token(2), token(3)])
    error = caught.value
    assert isinstance(error, PermanentDeliveryError) and not error.retryable
    assert error.reason_code == "unauthorized"
    assert "403 TopicDisallowed" in str(error) and "Settings > Plugins" in str(error)
    assert error.outcome.sent == [token(3)]
    assert error.failed == [token(1), token(2)]


def test_unreachable_apns_is_transient(identity: tuple[bytes, bytes]) -> None:
    """Nobody listening: a transient error, so the core retries."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"https://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(ApnsUnavailable) as caught:
        push_updates(LIVE, identity, TOPIC, [token(1)], base_url=closed, ca_pem=ThrowawayCA("x").ca_pem)
    assert caught.value.reason_code == "provider_unavailable"
    assert caught.value.failed == [token(1)]


def test_an_expired_certificate_is_permanent_before_any_push(fake: FakeApns) -> None:
    """An expired Pass Type ID certificate would only be dropped by TLS: refuse it up front."""
    expired = (testchain.expired_certificate_pem().encode(), testchain.chain().private_key_pem.encode())
    with pytest.raises(PermanentDeliveryError) as caught:
        push(fake, expired, [token(1)])
    assert caught.value.reason_code == "certificate_expired"
    assert fake.devices.pushes() == []


def test_a_key_that_does_not_match_is_permanent(fake: FakeApns, identity: tuple[bytes, bytes]) -> None:
    """A certificate with somebody else's key cannot be loaded: permanent, no push."""
    other_key = ThrowawayCA("x").issue_client("y")[1]
    with pytest.raises(PermanentDeliveryError) as caught:
        push(fake, (identity[0], other_key), [token(1)])
    assert caught.value.reason_code == "bad_certificate"


def test_live_mode_needs_a_certificate() -> None:
    """Without the Pass Type ID certificate nothing can be pushed outside the sandbox."""
    with pytest.raises(PermanentDeliveryError) as caught:
        push_updates(LIVE, None, TOPIC, [token(1)])
    assert caught.value.reason_code == "not_configured"


def test_sandbox_mode_pushes_to_the_sandbox_with_the_tenant_bearer() -> None:
    """In sandbox mode pushes go to ctx.sandbox_url with a bearer naming the tenant, no certificate."""
    with running_sandbox() as (url, _app):
        ctx = ChannelContext(tenant="shop", config=None, sandbox=True, sandbox_url=url + "/", public_url="")
        credential = {"authorization": f"bearer {sandbox_credential('shop')}"}
        httpx.post(f"{url}/_sandbox/unregistered/{token(2)}", headers=credential).raise_for_status()
        assert push_updates(ctx, None, TOPIC, [token(1), token(2)]) == PushOutcome([token(1)], [token(2)])
        received = httpx.get(f"{url}/_sandbox/pushes", headers=credential).json()["pushes"]
        assert sorted((p["token"], p["topic"], p["body"], p["status"]) for p in received) == [
            (token(1), TOPIC, "{}", 200),
            (token(2), TOPIC, "{}", 410),
        ]
        other = httpx.get(f"{url}/_sandbox/pushes", headers={"authorization": "bearer tessera-sandbox.other"})
        assert other.json() == {"pushes": []}
