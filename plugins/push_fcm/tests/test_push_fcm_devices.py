"""deliver() to every device of a profile against the served fake: gone tokens, transient failures, opens."""

from __future__ import annotations

import time

from fcm_support import FakeServer, context, outbound
from tessera_push_fcm.channel import FcmChannel
from tessera_push_fcm.message import OPEN_URL_KEY

from core.plugin_api import DeliveryResult, DeliveryStatus, OutboundMessage

PHONE = "cGhvbmUtdG9rZW4:APA91bPhone"
TABLET = "dGFibGV0LXRva2Vu:APA91bTablet"
WATCH = "d2F0Y2gtdG9rZW4:APA91bWatch"
OPEN_URL = "https://cdp.example.com/o/shop/2s-Zm9vYmFy"


def deliver(fake: FakeServer, *messages: OutboundMessage, **config: object) -> list[DeliveryResult]:
    """Deliver ``messages`` through the channel, sandboxed at ``fake``."""
    return FcmChannel().deliver(context(fake, **config), list(messages))


def sent_tokens(fake: FakeServer) -> list[str]:
    """The registration tokens the fake delivered to, sorted."""
    return sorted(sent["message"]["token"] for sent in fake.state()["sent"])


def test_a_push_reaches_every_device_of_the_profile(clean: FakeServer) -> None:
    """Phone and tablet both get the message; the result names the address's FCM message."""
    (result,) = deliver(clean, outbound("1", PHONE, devices=[PHONE, TABLET]))
    assert result.status == DeliveryStatus.sent and result.gone_addresses == []
    assert sent_tokens(clean) == sorted([PHONE, TABLET])
    by_token = {s["message"]["token"]: s for s in clean.state()["sent"]}
    assert result.provider_id == by_token[PHONE]["name"]
    assert result.detail == "Sent to 2 of 2 devices."
    assert {s["message"]["notification"]["title"] for s in by_token.values()} == {"Hello"}


def test_the_address_is_reached_even_when_not_listed_and_tokens_go_once(clean: FakeServer) -> None:
    """The address is always a device; a token listed twice gets one message."""
    (result,) = deliver(clean, outbound("1", PHONE, devices=[TABLET, TABLET, PHONE]))
    assert result.status == DeliveryStatus.sent
    assert sent_tokens(clean) == sorted([PHONE, TABLET])
    assert len(clean.state()["received"]) == 2


def test_gone_tokens_among_live_ones_are_reported_and_the_message_is_sent(clean: FakeServer) -> None:
    """An uninstalled app (UNREGISTERED) and a malformed token are gone; the live device still gets it."""
    clean.post("unregister", {"tokens": [PHONE]})
    (result,) = deliver(clean, outbound("1", PHONE, devices=[PHONE, "not a token", TABLET]))
    assert (result.status, result.reason_code) == (DeliveryStatus.sent, None)
    assert result.gone_addresses == [PHONE, "not a token"]
    assert sent_tokens(clean) == [TABLET]
    assert result.provider_id == clean.state()["sent"][0]["name"]
    assert result.detail == "Sent to 1 of 3 devices; 2 gone."


def test_every_token_gone_fails_permanently_with_all_of_them(clean: FakeServer) -> None:
    """When no device exists any more, the message fails as token_gone and every token is retired."""
    clean.post("unregister", {"tokens": [PHONE, TABLET]})
    (result,) = deliver(clean, outbound("1", PHONE, devices=[PHONE, TABLET]))
    assert (result.status, result.reason_code, result.retryable) == (
        DeliveryStatus.failed,
        "token_gone",
        False,
    )
    assert result.gone_addresses == [PHONE, TABLET]
    assert result.detail is not None and "all 2 registration tokens" in result.detail
    assert clean.state()["sent"] == []


def test_a_single_gone_token_is_reported_too(clean: FakeServer) -> None:
    """With one device, a gone token fails the message and is listed for the core to retire."""
    clean.post("unregister", {"tokens": [PHONE]})
    (result,) = deliver(clean, outbound("1", PHONE))
    assert (result.reason_code, result.retryable, result.gone_addresses) == ("token_gone", False, [PHONE])


def test_gone_and_transient_retry_later_but_report_the_gone_one(clean: FakeServer) -> None:
    """No device reached, one unavailable: retryable after Retry-After, the gone token still listed."""
    clean.post("unregister", {"tokens": [PHONE]})
    clean.post("fail", {"status": 503, "retry_after": 5, "token": TABLET})
    (result,) = deliver(clean, outbound("1", PHONE, devices=[PHONE, TABLET]))
    assert (result.status, result.reason_code, result.retryable) == (
        DeliveryStatus.failed,
        "unavailable",
        True,
    )
    assert result.retry_after == 5.0
    assert result.gone_addresses == [PHONE]
    assert result.detail is not None and result.detail.startswith("Sent to 0 of 2 devices; 1 gone; 1 failed")


def test_a_transient_failure_wins_over_a_permanent_one_and_waits_the_longest(clean: FakeServer) -> None:
    """Another project's token and two throttled devices: retry (the live ones may still get it) after 30 s."""
    clean.post("fail", {"status": 403, "error_code": "SENDER_ID_MISMATCH", "token": PHONE})
    clean.post("fail", {"status": 429, "retry_after": 30, "token": TABLET})
    clean.post("fail", {"status": 503, "retry_after": 2, "token": WATCH})
    (result,) = deliver(clean, outbound("1", PHONE, devices=[PHONE, TABLET, WATCH]))
    assert (result.reason_code, result.retryable, result.retry_after) == ("quota_exceeded", True, 30.0)
    assert result.gone_addresses == []


def test_only_permanent_failures_fail_permanently(clean: FakeServer) -> None:
    """No device reached and nothing to retry: the first permanent reason, gone tokens listed."""
    clean.post("unregister", {"tokens": [TABLET]})
    clean.post("fail", {"status": 403, "error_code": "SENDER_ID_MISMATCH", "token": PHONE})
    (result,) = deliver(clean, outbound("1", PHONE, devices=[PHONE, TABLET]))
    assert (result.reason_code, result.retryable, result.gone_addresses) == (
        "sender_id_mismatch",
        False,
        [TABLET],
    )


def test_a_device_failing_transiently_does_not_hold_back_a_sent_message(clean: FakeServer) -> None:
    """Sent on one device, unavailable on the other: sent (a retry would push the first one twice)."""
    clean.post("fail", {"status": 503, "token": TABLET})
    (result,) = deliver(clean, outbound("1", PHONE, devices=[PHONE, TABLET]))
    assert (result.status, result.retryable) == (DeliveryStatus.sent, False)
    assert result.detail == "Sent to 1 of 2 devices; 1 failed (unavailable)."


def test_the_open_tracking_address_travels_in_data_to_every_device(clean: FakeServer) -> None:
    """Each device's message carries the delivery's open_url next to the template's data."""
    message = outbound("1", PHONE, devices=[PHONE, TABLET], open_url=OPEN_URL, data={"order": "42"})
    (result,) = deliver(clean, message)
    assert result.status == DeliveryStatus.sent
    datas = [sent["message"]["data"] for sent in clean.state()["sent"]]
    assert datas == [{"order": "42", OPEN_URL_KEY: OPEN_URL}] * 2


def test_without_an_open_url_nothing_is_added(clean: FakeServer) -> None:
    """A message with no open-tracking address (a test send, an older core) has no extra data."""
    deliver(clean, outbound("1", PHONE))
    (sent,) = clean.state()["sent"]
    assert "data" not in sent["message"]


def test_a_profile_without_tokens_fails_without_a_call(clean: FakeServer) -> None:
    """No address and no listed token: a permanent no_address, and FCM is not called."""
    (result,) = deliver(clean, outbound("1", "", devices=[]))
    assert (result.reason_code, result.retryable) == ("no_address", False)
    assert clean.state()["received"] == []


def test_devices_of_a_batch_share_the_bounded_pool(clean: FakeServer) -> None:
    """4 messages x 3 devices with latency: all in flight together up to the configured number, no more."""
    clean.post("delay", {"seconds": 0.2})
    batch = [
        outbound(str(i), f"{PHONE}{i}", devices=[f"{PHONE}{i}", f"{TABLET}{i}", f"{WATCH}{i}"])
        for i in range(4)
    ]
    started = time.monotonic()
    results = deliver(clean, *batch, concurrency=6)
    elapsed = time.monotonic() - started
    assert [r.delivery_id for r in results] == ["0", "1", "2", "3"]
    assert all(r.status == DeliveryStatus.sent and r.detail == "Sent to 3 of 3 devices." for r in results)
    assert len(clean.state()["sent"]) == 12
    assert clean.state()["max_in_flight"] == 6
    assert elapsed < 12 * 0.2 / 2  # 12 calls of 0.2 s, 6 at a time: about 0.4 s, far from one by one


def test_a_401_refreshes_the_token_once_for_all_devices(clean: FakeServer) -> None:
    """Expired access token while sending to three devices: one new token, every device reached."""
    deliver(clean, outbound("0", PHONE))
    clean.post("expire_tokens", {})
    (result,) = deliver(clean, outbound("1", PHONE, devices=[PHONE, TABLET, WATCH]))
    assert result.status == DeliveryStatus.sent and result.detail == "Sent to 3 of 3 devices."
    assert clean.state()["tokens_issued"] == 2


def test_invalid_content_fails_before_any_call(clean: FakeServer) -> None:
    """A template FCM cannot carry fails the message permanently, no device is called."""
    (result,) = deliver(clean, outbound("1", PHONE, devices=[PHONE, TABLET], data={"count": 3}))
    assert (result.reason_code, result.retryable) == ("invalid_content", False)
    assert clean.state()["received"] == []
