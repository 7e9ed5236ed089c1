"""deliver() against the served fake: success, every documented error, tokens, concurrency."""

from __future__ import annotations

from typing import Any

import pytest
from fcm_support import FakeServer, context, outbound
from tessera_push_fcm.channel import FcmChannel
from tessera_push_fcm.sender import TOKENS

from core.plugin_api import ChannelContext, DeliveryResult, DeliveryStatus, PermanentDeliveryError

TOKEN = "dGVzdC10b2tlbi0x:APA91bHk"


def send_one(fake: FakeServer, token: str = TOKEN, **template: Any) -> DeliveryResult:
    """Deliver one message and return its result."""
    (result,) = FcmChannel().deliver(context(fake), [outbound("1", token, **template)])
    return result


def test_success_returns_the_message_name_and_sends_the_built_body(clean: FakeServer) -> None:
    """A sent message carries FCM's message name; the fake received the notification and data."""
    result = send_one(clean, data={"order": "42"}, deep_link="shop://orders/42")
    assert result.status == DeliveryStatus.sent
    (sent,) = clean.state()["sent"]
    assert result.provider_id == sent["name"] and sent["name"].startswith(
        "projects/tessera-sandbox/messages/"
    )
    message = sent["message"]
    assert message["token"] == TOKEN
    assert message["notification"] == {"title": "Hello", "body": "Your order shipped"}
    assert message["data"] == {"order": "42", "deep_link": "shop://orders/42"}


def test_unregistered_token_is_gone(clean: FakeServer) -> None:
    """UNREGISTERED (404) fails permanently with token_gone."""
    clean.post("unregister", {"tokens": [TOKEN]})
    result = send_one(clean)
    assert (result.status, result.reason_code, result.retryable) == (
        DeliveryStatus.failed,
        "token_gone",
        False,
    )


def test_malformed_token_is_gone(clean: FakeServer) -> None:
    """INVALID_ARGUMENT about the registration token also means token_gone."""
    result = send_one(clean, token="bad token!")
    assert (result.reason_code, result.retryable) == ("token_gone", False)


def test_other_invalid_argument_is_permanent_with_the_reason(clean: FakeServer) -> None:
    """Another INVALID_ARGUMENT fails permanently, saying what Firebase said."""
    clean.post("fail", {"status": 400})
    result = send_one(clean)
    assert (result.reason_code, result.retryable) == ("invalid_argument", False)
    assert result.detail is not None and "invalid argument" in result.detail


@pytest.mark.parametrize(
    ("status", "retry_after", "reason", "expected_wait"),
    [(429, 7, "quota_exceeded", 7.0), (429, None, "quota_exceeded", 60.0), (503, 3, "unavailable", 3.0),
     (500, None, "internal", None)],
)  # fmt: skip
def test_retryable_errors_carry_retry_after(
    clean: FakeServer, status: int, retry_after: int | None, reason: str, expected_wait: float | None
) -> None:
    """QUOTA_EXCEEDED, UNAVAILABLE and INTERNAL are retryable, after Retry-After when given."""
    clean.post("fail", {"status": status, "retry_after": retry_after})
    result = send_one(clean)
    assert (result.status, result.reason_code, result.retryable) == (DeliveryStatus.failed, reason, True)
    assert result.retry_after == expected_wait


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [(403, "SENDER_ID_MISMATCH", "sender_id_mismatch"),
     (401, "THIRD_PARTY_AUTH_ERROR", "third_party_auth_error"),
     (403, "", "permission_denied")],
)  # fmt: skip
def test_configuration_errors_are_permanent(clean: FakeServer, status: int, code: str, reason: str) -> None:
    """SENDER_ID_MISMATCH, THIRD_PARTY_AUTH_ERROR and a plain 403 never retry (no token refresh either)."""
    clean.post("fail", {"status": status, "error_code": code})
    result = send_one(clean)
    assert (result.reason_code, result.retryable) == (reason, False)
    assert clean.state()["tokens_issued"] == 1


def test_one_token_serves_many_sends(clean: FakeServer) -> None:
    """The access token is fetched once and reused across messages and batches."""
    channel, ctx = FcmChannel(), context(clean)
    for round_ in range(3):
        batch = [outbound(f"{round_}-{i}", f"{TOKEN}{i}") for i in range(5)]
        assert all(r.status == DeliveryStatus.sent for r in channel.deliver(ctx, batch))
    assert clean.state()["tokens_issued"] == 1
    assert len(clean.state()["sent"]) == 15


def test_a_401_refreshes_the_token_once_and_retries(clean: FakeServer) -> None:
    """An expired token gets one new token and one more try, which succeeds."""
    assert send_one(clean).status == DeliveryStatus.sent
    clean.post("expire_tokens", {})
    assert send_one(clean).status == DeliveryStatus.sent
    assert clean.state()["tokens_issued"] == 2


def test_a_second_401_is_permanent(clean: FakeServer) -> None:
    """If the new token is refused too, the message fails (no loop)."""
    clean.post("fail", {"status": 401, "times": 2})
    result = send_one(clean)
    assert (result.reason_code, result.retryable) == ("credentials_refused", False)
    assert clean.state()["tokens_issued"] == 2 and len(clean.state()["received"]) == 2


def test_sends_overlap_up_to_the_configured_concurrency(clean: FakeServer) -> None:
    """With latency, requests are in flight together, never more than the configured number."""
    clean.post("delay", {"seconds": 0.2})
    ctx = context(clean, concurrency=4)
    results = FcmChannel().deliver(ctx, [outbound(str(i), f"{TOKEN}{i}") for i in range(12)])
    assert sorted(int(r.delivery_id) for r in results) == list(range(12))
    assert all(r.status == DeliveryStatus.sent for r in results)
    assert clean.state()["max_in_flight"] == 4


def test_mixed_batch_gets_one_result_each(clean: FakeServer) -> None:
    """Each message of a batch gets its own outcome."""
    clean.post("unregister", {"tokens": [TOKEN + "dead"]})
    batch = [outbound("1", TOKEN), outbound("2", TOKEN + "dead"), outbound("3", "no good")]
    results = {r.delivery_id: r.reason_code for r in FcmChannel().deliver(context(clean), batch)}
    assert results == {"1": None, "2": "token_gone", "3": "token_gone"}


def test_unknown_service_account_fails_the_batch_permanently(clean: FakeServer) -> None:
    """A key the token endpoint does not trust refuses the whole batch, saying so."""
    ctx = context(clean)
    assert FcmChannel().deliver(ctx, [outbound("1", TOKEN)])[0].status == DeliveryStatus.sent  # introduced
    clean.app.state.fcm.trusted.clear()  # the fake forgets the account; the channel will not re-introduce it
    TOKENS.clear()
    with pytest.raises(PermanentDeliveryError) as caught:
        FcmChannel().deliver(ctx, [outbound("2", TOKEN)])
    assert caught.value.reason_code == "credentials_refused"
    assert "account not found" in str(caught.value)


def test_not_configured_is_refused() -> None:
    """Without a config, deliver refuses permanently (not_configured)."""
    ctx = ChannelContext(tenant="t", config=None, sandbox=True, sandbox_url="http://x", public_url="http://x")
    with pytest.raises(PermanentDeliveryError) as caught:
        FcmChannel().deliver(ctx, [outbound("1", TOKEN)])
    assert caught.value.reason_code == "not_configured"
