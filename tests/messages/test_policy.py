"""Who may get a message now: consent, an address, frequency caps per channel and overall, and quiet
hours in the profile's (else the tenant's) time zone, which defer a send and never drop it."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from core.messages.policy import (
    Cap,
    Policy,
    QuietHours,
    Reason,
    Recipient,
    Verdict,
    decide,
    quiet_until,
    zone_of,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # 13:00 in Paris
OK = Recipient(consented=True, address="+33612345678")


def test_a_consenting_profile_with_an_address_gets_the_message() -> None:
    assert decide(Policy(), "whatsapp", OK, NOW).verdict == Verdict.send


def test_no_consent_suppresses_marketing_but_not_service_messages() -> None:
    refused = Recipient(consented=False, address="+33612345678")
    assert decide(Policy(), "whatsapp", refused, NOW).reason == Reason.no_consent
    assert decide(Policy(), "whatsapp", refused, NOW, marketing=False).verdict == Verdict.send


def test_no_address_on_the_channel_suppresses() -> None:
    decision = decide(Policy(), "push_fcm", Recipient(consented=True, address=None), NOW)
    assert (decision.verdict, decision.reason) == (Verdict.suppress, Reason.no_address)


def test_frequency_caps_count_sent_messages_per_channel_and_overall() -> None:
    policy = Policy(
        overall_cap=Cap(messages=3, hours=24), channel_caps={"whatsapp": Cap(messages=1, hours=168)}
    )
    sent_whatsapp_6_days_ago = Recipient(True, "+33612345678", sent=(("whatsapp", NOW - timedelta(days=6)),))
    assert decide(policy, "whatsapp", sent_whatsapp_6_days_ago, NOW).reason == Reason.frequency_cap
    assert decide(policy, "push_fcm", sent_whatsapp_6_days_ago, NOW).verdict == Verdict.send
    week_later = NOW + timedelta(days=1, minutes=1)
    assert decide(policy, "whatsapp", sent_whatsapp_6_days_ago, week_later).verdict == Verdict.send
    three_today = Recipient(True, "x", sent=tuple(("push_fcm", NOW - timedelta(hours=h)) for h in (1, 2, 23)))
    assert decide(policy, "email", three_today, NOW).reason == Reason.frequency_cap
    assert decide(policy, "email", three_today, NOW + timedelta(hours=1, seconds=1)).verdict == Verdict.send
    assert decide(policy, "email", three_today, NOW, marketing=False).verdict == Verdict.send


def test_quiet_hours_defer_to_their_end_in_the_profiles_time_zone() -> None:
    policy = Policy(quiet_hours=QuietHours(start=time(21), end=time(8)))
    late_in_paris = datetime(2026, 3, 10, 21, 30, tzinfo=UTC)  # 22:30 in Paris, 17:30 in New York
    in_paris = Recipient(True, "x", timezone="Europe/Paris")
    decision = decide(policy, "push_fcm", in_paris, late_in_paris)
    assert (decision.verdict, decision.reason) == (Verdict.defer, Reason.quiet_hours)
    assert decision.until == datetime(2026, 3, 11, 7, 0, tzinfo=UTC)  # 08:00 in Paris
    in_new_york = Recipient(True, "x", timezone="America/New_York")
    assert decide(policy, "push_fcm", in_new_york, late_in_paris).verdict == Verdict.send
    unknown_zone = Recipient(True, "x", timezone="Mars/Olympus")  # falls back to the tenant's zone
    assert (
        decide(policy, "push_fcm", unknown_zone, late_in_paris, tenant_zone="Europe/Paris").verdict
        == Verdict.defer
    )


@pytest.mark.parametrize(
    ("start", "end", "local", "until"),
    [
        (time(21), time(8), datetime(2026, 3, 10, 6, 0), datetime(2026, 3, 10, 8, 0)),  # early morning
        (time(21), time(8), datetime(2026, 3, 10, 8, 0), None),  # the end is not quiet
        (time(21), time(8), datetime(2026, 3, 10, 21, 0), datetime(2026, 3, 11, 8, 0)),
        (time(12), time(14), datetime(2026, 3, 10, 13, 0), datetime(2026, 3, 10, 14, 0)),  # lunch, no wrap
        (time(12), time(14), datetime(2026, 3, 10, 11, 59), None),
        (time(1), time(3), datetime(2026, 3, 29, 1, 30), datetime(2026, 3, 29, 3, 0)),  # the night clocks skip 2-3
    ],
)  # fmt: skip
def test_quiet_hours_windows(start, end, local, until) -> None:
    zone = zone_of("Europe/Paris", "UTC")
    ends = quiet_until(QuietHours(start=start, end=end), local.replace(tzinfo=zone), zone)
    assert ends == (until.replace(tzinfo=zone).astimezone(UTC) if until else None)


def test_quiet_hours_never_apply_to_service_messages() -> None:
    policy = Policy(quiet_hours=QuietHours(start=time(0), end=time(23, 59)))
    assert decide(policy, "push_fcm", OK, NOW, marketing=False).verdict == Verdict.send
