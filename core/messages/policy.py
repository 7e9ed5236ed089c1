"""Whether one message may go to one profile now: consent, an address, frequency caps, quiet hours.

:func:`decide` returns ``send``, ``suppress`` with a reason (``no_consent``, ``no_address``,
``frequency_cap``) or ``defer`` until a moment (quiet hours). A deferred message is sent later,
never dropped. The rules are pure: the caller gives what it knows of the profile and of the
messages already sent to it (the delivery pipeline reads them from its delivery rows).

- **Consent**: marketing messages need the profile's consent for the channel; service messages
  (an order confirmation, a pass update the customer asked for) do not.
- **Frequency caps**: at most N messages per profile per period, per channel and over all
  channels, set per tenant. Only sent messages count (suppressed and deferred ones do not).
- **Rate limits**: sends per second per channel and per tenant (the channel's own limit applies
  too); the sender waits for them, nothing is dropped.
- **Quiet hours**: a window of the local day (``21:00``–``08:00`` wraps over midnight) in the
  profile's time zone, else the tenant's, during which marketing messages wait for its end.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field


class Verdict(enum.StrEnum):
    """What happens to a message."""

    send = "send"
    suppress = "suppress"
    defer = "defer"


class Reason(enum.StrEnum):
    """Why a message was suppressed or deferred (the report counts by these)."""

    no_consent = "no_consent"
    no_address = "no_address"
    frequency_cap = "frequency_cap"
    quiet_hours = "quiet_hours"


class Cap(BaseModel):
    """At most ``messages`` per ``hours``."""

    model_config = ConfigDict(extra="forbid")
    messages: int = Field(ge=1, le=1000)
    hours: int = Field(ge=1, le=24 * 366)


class QuietHours(BaseModel):
    """Local hours during which marketing messages wait (``start`` after ``end`` wraps midnight)."""

    model_config = ConfigDict(extra="forbid")
    start: time
    end: time


class Policy(BaseModel):
    """A tenant's sending policy."""

    model_config = ConfigDict(extra="forbid")
    overall_cap: Cap | None = None
    channel_caps: dict[str, Cap] = {}
    quiet_hours: QuietHours | None = None
    # Sends per second, per channel and over all channels of the tenant (None: no limit of ours).
    channel_rates: dict[str, float] = {}
    tenant_rate: float | None = Field(default=None, gt=0)


@dataclass(frozen=True)
class Recipient:
    """What the policy needs to know of one profile for one channel."""

    consented: bool
    address: str | None
    timezone: str | None = None
    sent: tuple[tuple[str, datetime], ...] = ()  # (channel, when) of messages already sent


@dataclass(frozen=True)
class Decision:
    """The verdict, its reason, and for a deferral when to try again."""

    verdict: Verdict
    reason: Reason | None = None
    until: datetime | None = None


SEND = Decision(Verdict.send)


def decide(
    policy: Policy,
    channel: str,
    recipient: Recipient,
    now: datetime,
    tenant_zone: str = "UTC",
    marketing: bool = True,
) -> Decision:
    """The decision for one message on ``channel`` to ``recipient`` at ``now``."""
    if marketing and not recipient.consented:
        return Decision(Verdict.suppress, Reason.no_consent)
    if not recipient.address:
        return Decision(Verdict.suppress, Reason.no_address)
    if marketing and _over_cap(policy, channel, recipient.sent, now):
        return Decision(Verdict.suppress, Reason.frequency_cap)
    if marketing and policy.quiet_hours is not None:
        until = quiet_until(policy.quiet_hours, now, zone_of(recipient.timezone, tenant_zone))
        if until is not None:
            return Decision(Verdict.defer, Reason.quiet_hours, until)
    return SEND


def _over_cap(policy: Policy, channel: str, sent: Iterable[tuple[str, datetime]], now: datetime) -> bool:
    history = list(sent)
    caps: list[tuple[Cap, str | None]] = []
    if policy.overall_cap is not None:
        caps.append((policy.overall_cap, None))
    if channel in policy.channel_caps:
        caps.append((policy.channel_caps[channel], channel))
    for cap, only in caps:
        since = now - timedelta(hours=cap.hours)
        recent = sum(1 for on, at in history if at > since and (only is None or on == only))
        if recent >= cap.messages:
            return True
    return False


def zone_of(profile_zone: str | None, tenant_zone: str) -> ZoneInfo:
    """The profile's time zone when it names a real one, else the tenant's."""
    for name in (profile_zone, tenant_zone):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def quiet_until(quiet: QuietHours, now: datetime, zone: ZoneInfo) -> datetime | None:
    """When the quiet hours around ``now`` end (in UTC), or None outside them."""
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    wraps = quiet.start > quiet.end
    inside = (clock >= quiet.start or clock < quiet.end) if wraps else (quiet.start <= clock < quiet.end)
    if not inside or quiet.start == quiet.end:
        return None
    end_day = local.date() + timedelta(days=1) if wraps and clock >= quiet.start else local.date()
    # A wall time skipped by a DST change resolves forward through the UTC round trip.
    return datetime.combine(end_day, quiet.end, zone).astimezone(UTC)
