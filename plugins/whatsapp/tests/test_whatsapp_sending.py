"""deliver() against the fake: bodies sent, wamids returned, Meta's errors mapped, pacing kept."""

from __future__ import annotations

from typing import Any

import pytest
from tessera_whatsapp.channel import WhatsAppChannel, WhatsAppConfig
from tessera_whatsapp.sandbox import FakeWhatsApp, sandbox_config

from core.plugin_api import (
    ChannelContext,
    DeliveryResult,
    DeliveryStatus,
    OutboundMessage,
    PermanentDeliveryError,
    ProfileSnapshot,
)

Fake = tuple[FakeWhatsApp, str]
TO = "16505551234"
ORDER = {"template_name": "order_update", "body_parameters": "Ana\nA-123"}


def context(url: str, **config: Any) -> ChannelContext:
    """A sandboxed tenant whose sandbox is the fake at ``url``."""
    values = WhatsAppConfig.model_validate({**sandbox_config(), **config})
    return ChannelContext(tenant="t", config=values, sandbox=True, sandbox_url=url, public_url="https://x")


def message(template: dict[str, Any], index: int = 1, to: str = TO) -> OutboundMessage:
    """An outbound message as the core hands it over (template fields already rendered)."""
    return OutboundMessage(
        delivery_id=str(index), idempotency_key=f"k{index}", profile=ProfileSnapshot(id="p"),
        address=to, template=template,
    )  # fmt: skip


def send(url: str, template: dict[str, Any], **config: Any) -> DeliveryResult:
    """Deliver one message and return its result."""
    (result,) = WhatsAppChannel().deliver(context(url, **config), [message(template)])
    return result


def test_template_message_is_sent_with_its_wamid(fake: Fake) -> None:
    """Success: status sent, provider_id is the wamid the fake answered, body as documented."""
    state, url = fake
    result = send(url, ORDER)
    assert result.status == DeliveryStatus.sent
    (sent,) = state.sent
    assert result.provider_id == sent["id"] and sent["id"].startswith("wamid.")
    assert sent["body"] == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": TO, "type": "template",
        "template": {"name": "order_update", "language": {"code": "en_US"}, "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "A-123"}]}]},
    }  # fmt: skip


def test_free_form_only_inside_the_window(fake: Fake) -> None:
    """Text outside the 24-hour window: permanent outside_window (131047); inside: sent."""
    state, url = fake
    result = send(url, {"kind": "text", "text": "Hello"})
    assert (result.status, result.reason_code, result.retryable) == (
        DeliveryStatus.failed,
        "outside_window",
        False,
    )
    assert "131047" in (result.detail or "")
    state.inbound(TO)
    assert send(url, {"kind": "text", "text": "Hello"}).status == DeliveryStatus.sent
    assert (
        send(url, {"kind": "image", "media_url": "https://x/y.jpg", "caption": "Hi"}).status
        == DeliveryStatus.sent
    )
    assert state.sent[-1]["body"]["image"] == {"link": "https://x/y.jpg", "caption": "Hi"}


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ({"template_name": "order_update", "body_parameters": "Ana"}, "template_parameter_mismatch"),
        ({"template_name": "no_such_template"}, "template_not_found"),
        ({"template_name": "hello_world", "language": "fr"}, "template_not_found"),
        ({"template_name": "spring_sale", "body_parameters": "Ana"}, "template_paused"),
    ],
)
def test_template_errors_are_permanent_with_the_reason(
    fake: Fake, template: dict[str, Any], reason: str
) -> None:
    """132000, 132001 and 132015 from the fake's template checks."""
    result = send(fake[1], template)
    assert (result.status, result.reason_code, result.retryable) == (DeliveryStatus.failed, reason, False)


@pytest.mark.parametrize(
    ("code", "http", "reason", "retryable", "retry_after"),
    [
        (131026, 400, "undeliverable", False, None),
        (131047, 400, "outside_window", False, None),
        (130429, 429, "rate_limited", True, 1.0),
        (131056, 400, "pair_rate_limited", True, 6.0),
        (80007, 400, "rate_limited", True, 60.0),
        (131000, 500, "provider_unavailable", True, None),
        (2, 503, "provider_unavailable", True, None),
        (100, 400, "meta_error_100", False, None),
    ],
)
def test_scripted_errors_are_mapped(
    fake: Fake, code: int, http: int, reason: str, retryable: bool, retry_after: float | None
) -> None:
    """Each documented code gives its reason, retryability and wait (Retry-After first)."""
    state, url = fake
    state.fail_next(code, http)
    result = send(url, ORDER)
    assert (result.status, result.reason_code, result.retryable) == (DeliveryStatus.failed, reason, retryable)
    assert result.retry_after == retry_after
    assert send(url, ORDER).status == DeliveryStatus.sent  # only the next send was scripted


def test_expired_or_wrong_token_is_credentials_refused(fake: Fake) -> None:
    """Code 190, expired (subcode 463) or unparseable: permanent credentials_refused."""
    state, url = fake
    state.expired_tokens.add("EAAG-old")
    for token in ["EAAG-old", "garbage"]:
        result = send(url, ORDER, access_token=token)
        assert (result.reason_code, result.retryable) == ("credentials_refused", False)


def test_unreachable_provider_is_retryable() -> None:
    """A refused connection is a retryable network_error."""
    result = send("http://127.0.0.1:9", ORDER, api_url=None)
    assert (result.status, result.reason_code, result.retryable) == (
        DeliveryStatus.failed,
        "network_error",
        True,
    )


def test_invalid_template_fields_fail_that_message_only(fake: Fake) -> None:
    """A message whose fields do not make a WhatsApp message is invalid_content, not a crash."""
    results = WhatsAppChannel().deliver(context(fake[1]), [message({"kind": "text"}, 1), message(ORDER, 2)])
    by_id = {r.delivery_id: r for r in results}
    assert by_id["1"].reason_code == "invalid_content" and by_id["2"].status == DeliveryStatus.sent


def test_sends_go_evenly_at_the_configured_rate_and_none_is_refused(fake: Fake) -> None:
    """With 5 messages/s configured, 12 sends leave 200 ms apart (not in bursts): the fake's bucket
    never refuses one. Arrival times are allowed a generous 150 ms of jitter, for busy machines."""
    state, url = fake
    state.rate_limit = 5
    batch = [message(ORDER, i) for i in range(1, 13)]
    results = WhatsAppChannel().deliver(context(url, messages_per_second=5), batch)
    assert {r.status for r in results} == {DeliveryStatus.sent}
    assert state.rate_limited == 0
    arrived = sorted(state.request_times)
    assert all(later - earlier >= 1.0 - 0.15 for earlier, later in zip(arrived, arrived[5:], strict=False))


def test_the_fake_answers_130429_above_its_limit(fake: Fake) -> None:
    """Configured faster than the number allows: the excess is retryable rate_limited."""
    state, url = fake
    state.rate_limit = 2
    batch = [message(ORDER, i) for i in range(1, 7)]
    results = WhatsAppChannel().deliver(context(url, messages_per_second=100), batch)
    limited = [r for r in results if r.reason_code == "rate_limited"]
    assert limited and all(r.retryable and r.retry_after == 1.0 for r in limited)
    assert state.rate_limited == len(limited)


def test_unconfigured_or_empty() -> None:
    """No config: permanent not_configured; an empty batch sends nothing."""
    ctx = ChannelContext(tenant="t", config=None, sandbox=False, sandbox_url="", public_url="https://x")
    assert WhatsAppChannel().deliver(ctx, []) == []
    with pytest.raises(PermanentDeliveryError) as caught:
        WhatsAppChannel().deliver(ctx, [message(ORDER)])
    assert caught.value.reason_code == "not_configured"
