"""One message to every device of a profile: which tokens it goes to, and one result from their answers.

A person's phone and tablet each have a registration token; the message counts as sent when any
device accepted it. Tokens FCM calls gone are reported whatever the outcome, so the core retires
them. With no device reached, a retryable failure wins over a permanent one: a retry goes to the
live tokens again, and none of them has the message yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.plugin_api import DeliveryResult, DeliveryStatus, OutboundMessage
from tessera_push_fcm.errors import TOKEN_GONE, failed
from tessera_push_fcm.message import TOKEN_TYPE


@dataclass(frozen=True)
class DeviceOutcome:
    """FCM's answer for one registration token: accepted (with the message name), or why not."""

    token: str
    name: str | None = None
    failure: DeliveryResult | None = None

    @property
    def accepted(self) -> bool:
        """Whether FCM took the message for this device."""
        return self.failure is None

    @property
    def gone(self) -> bool:
        """Whether FCM says this token no longer exists."""
        return self.failure is not None and self.failure.reason_code == TOKEN_GONE


def device_tokens(message: OutboundMessage) -> list[str]:
    """The message's registration tokens, its address first, each once."""
    listed = message.profile.identifiers.get(TOKEN_TYPE, [])
    return [token for token in dict.fromkeys([message.address, *listed]) if token]


def no_device(delivery_id: str) -> DeliveryResult:
    """The result of a message whose profile has no registration token at all."""
    return failed(
        delivery_id,
        "no_address",
        "The profile has no FCM registration token: its app must send one (identify trait fcm_token "
        "or Segment's context.device.token).",
    )


def combine(delivery_id: str, outcomes: list[DeviceOutcome]) -> DeliveryResult:
    """One result for a message from its devices' outcomes (in token order, the address first)."""
    gone = [o.token for o in outcomes if o.gone]
    accepted = [o for o in outcomes if o.accepted]
    if accepted:
        return DeliveryResult(
            delivery_id=delivery_id,
            status=DeliveryStatus.sent,
            provider_id=next((o.name for o in accepted if o.name), None),
            detail=_summary(outcomes) if len(outcomes) > 1 else None,
            gone_addresses=gone,
        )
    failures = [o.failure for o in outcomes if o.failure is not None and not o.gone]
    if not failures:
        first = outcomes[0].failure
        assert first is not None
        if len(outcomes) == 1:
            return first.model_copy(update={"gone_addresses": gone})
        detail = f"FCM: all {len(gone)} registration tokens of this profile are gone (apps uninstalled)."
        return failed(delivery_id, TOKEN_GONE, detail).model_copy(update={"gone_addresses": gone})
    retryable = [f for f in failures if f.retryable]
    chosen = retryable[0] if retryable else failures[0]
    waits = [f.retry_after for f in retryable if f.retry_after is not None]
    detail = chosen.detail or ""
    if len(outcomes) > 1:
        detail = f"{_summary(outcomes)} {detail}"
    return chosen.model_copy(
        update={
            # The longest wait: a retry goes to every live device again.
            "retry_after": max(waits) if waits else chosen.retry_after,
            "detail": detail[:1000],
            "gone_addresses": gone,
        }
    )


def _summary(outcomes: list[DeviceOutcome]) -> str:
    """How the devices fared, e.g. "Sent to 2 of 3 devices; 1 gone."."""
    accepted = sum(o.accepted for o in outcomes)
    gone = sum(o.gone for o in outcomes)
    other = len(outcomes) - accepted - gone
    parts = [f"Sent to {accepted} of {len(outcomes)} devices"]
    if gone:
        parts.append(f"{gone} gone")
    if other:
        reasons = sorted({o.failure.reason_code or "failed" for o in outcomes if o.failure and not o.gone})
        parts.append(f"{other} failed ({', '.join(reasons)})")
    return "; ".join(parts) + "."
