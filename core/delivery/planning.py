"""Deciding, for many profiles at once, what a send does to each: send now, defer, or suppress.

Campaign confirmations (the reach after suppressions), campaign launches and journey send steps
all plan through here, so the figures a marketer confirms are the ones the launch writes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from core.delivery.models import DeliveryState
from core.delivery.outbox import NewDelivery
from core.delivery.recipients import RecipientData, load_recipients
from core.messages.personalization import MessageTemplate, MissingValue, render
from core.messages.policy import Decision, Policy, Verdict, decide

MISSING_VALUE = "missing_value"


@dataclass(frozen=True)
class Planned:
    """One profile's fate in a send; ``missing`` names a variable without a value for it."""

    person: RecipientData
    decision: Decision
    missing: str | None = None


@dataclass
class PlanSummary:
    """The figures of a plan, as a confirmation shows them."""

    targeted: int = 0
    to_send: int = 0
    deferred: int = 0
    suppressed: dict[str, int] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)

    @property
    def reach(self) -> int:
        """Profiles the send will reach (now or after quiet hours)."""
        return self.to_send + self.deferred


def _history_window(policy: Policy) -> timedelta:
    caps = [c for c in [policy.overall_cap, *policy.channel_caps.values()] if c is not None]
    return timedelta(hours=max((c.hours for c in caps), default=0))


def plan(
    connection: Connection,
    profile_ids: Collection[str],
    channel_key: str,
    address_type: str | None,
    template: MessageTemplate,
    policy: Policy,
    now: datetime,
    tenant_zone: str,
    marketing: bool = True,
    events: Mapping[str, dict[str, Any]] | None = None,
    tenant: str | None = None,
) -> list[Planned]:
    """The fate of a send to each live profile among ``profile_ids`` (``events``: per profile;
    ``tenant``: whose add-to-wallet links messages may carry)."""
    window = _history_window(policy)
    people = load_recipients(
        connection, profile_ids, channel_key, address_type, now - window if window else None, tenant=tenant
    )
    planned = []
    for person in people.values():
        decision = decide(policy, channel_key, person.recipient(), now, tenant_zone, marketing)
        missing = None
        if decision.verdict != Verdict.suppress:
            try:
                render(template, person.context((events or {}).get(person.profile_id)), person.locale)
            except MissingValue as exc:
                missing = exc.name
        planned.append(Planned(person, decision, missing))
    return planned


def summarize(planned: list[Planned], listed: int = 50, into: PlanSummary | None = None) -> PlanSummary:
    """Counts by fate; for each missing variable, up to ``listed`` of the profiles lacking it.
    With ``into``, the figures of an earlier part of the same plan are added to (a plan summed a
    chunk at a time)."""
    summary = into if into is not None else PlanSummary()
    summary.targeted += len(planned)
    suppressed: Counter[str] = Counter(summary.suppressed)
    missing: defaultdict[str, list[str]] = defaultdict(list, summary.missing)
    for item in planned:
        if item.missing:
            suppressed[MISSING_VALUE] += 1
            if len(missing[item.missing]) < listed:
                missing[item.missing].append(item.person.profile_id)
        elif item.decision.verdict == Verdict.suppress:
            suppressed[str(item.decision.reason)] += 1
        elif item.decision.verdict == Verdict.defer:
            summary.deferred += 1
        else:
            summary.to_send += 1
    summary.suppressed = dict(sorted(suppressed.items()))
    summary.missing = dict(sorted(missing.items()))
    return summary


def deliveries_of(
    planned: list[Planned], message_id: int, channel_key: str, key: Callable[[str], str], **fields: Any
) -> list[NewDelivery]:
    """The delivery rows of a plan; ``key(profile_id)`` gives each its idempotency key."""
    rows = []
    for item in planned:
        person, decision = item.person, item.decision
        state, reason, detail, due = DeliveryState.queued, None, None, None
        if item.missing:
            state, reason, detail = DeliveryState.suppressed, MISSING_VALUE, f"{item.missing} has no value"
        elif decision.verdict == Verdict.suppress:
            state, reason = DeliveryState.suppressed, str(decision.reason)
        elif decision.verdict == Verdict.defer:
            reason, due = str(decision.reason), decision.until
        rows.append(NewDelivery(
            idempotency_key=key(person.profile_id), message_id=message_id, profile_id=person.profile_id,
            channel=channel_key, address=person.address, state=state, reason=reason, detail=detail,
            due_at=due, **fields,
        ))  # fmt: skip
    return rows
