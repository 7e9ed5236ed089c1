"""What each kind of step does to the entries that reach it, a group of entries at a time.

Every handler gets the entries standing at one step of one journey, records a visit for each
and returns those that go straight on (already moved to their next step); the others now wait
or have ended. Groups keep sends and rule evaluations to a few queries per step, whatever the
number of entries.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from core.db.bulk import select_in
from core.db.engines import json_dumps
from core.delivery.models import DeliveryState, Message
from core.delivery.outbox import write_deliveries
from core.delivery.planning import deliveries_of, plan
from core.journeys import definition as d
from core.journeys.models import EntryState, Journey, JourneyEntry, JourneyMessage
from core.journeys.run import Run, choice, later
from core.loyalty import offers
from core.messages.personalization import MessageTemplate
from core.passes import notices
from core.passes.models import PassState, WalletPass
from core.profiles.models import Profile
from core.profiles.trait_writes import TraitChange, set_traits
from core.segments import evaluate as ev
from core.segments import rules as r
from core.segments.models import Segment

PROFILE = Profile.__table__  # type: ignore[attr-defined]
NOT_PUT = "not put: "  # how core.passes.notices.put_notice says why a profile's notice was not put
Handler = Callable[[Run, Journey, str, d._Step, list[JourneyEntry]], list[JourneyEntry]]


def send_key(journey_id: int, entry: JourneyEntry, step: str, visit: int) -> str:
    """The idempotency key of a send step's delivery: one per entry, step and visit."""
    return f"journey:{journey_id}:{entry.id}:{step}:{visit}"


def message_for(run: Run, journey: Journey, key: str, step: d.SendStep) -> int:
    """The message of a send step for the journey's current version, made once and then reused."""
    assert journey.id is not None
    cached = run.cache.get(("message", journey.id, journey.version, key))
    if cached is not None:
        return int(cached)
    session = run.session
    query = select(JourneyMessage.message_id).where(JourneyMessage.journey_id == journey.id,
        JourneyMessage.version == journey.version, JourneyMessage.step == key)  # fmt: skip
    found = session.exec(query).first()
    if found is None:
        try:
            with session.begin_nested():
                message = Message(channel=step.channel, content=step.content, marketing=step.marketing)
                session.add(message)
                session.flush()
                assert message.id is not None
                session.add(JourneyMessage(journey_id=journey.id, version=journey.version, step=key,
                                           message_id=message.id))  # fmt: skip
                session.flush()
            found = message.id
        except IntegrityError:  # another worker made it first: use theirs
            found = session.exec(query).one()
    run.cache[("message", journey.id, journey.version, key)] = found
    return int(found)


def send(
    run: Run, journey: Journey, key: str, step: d._Step, entries: list[JourneyEntry]
) -> list[JourneyEntry]:
    """Plan the message for each entry's profile and write its delivery (queued or suppressed)."""
    assert isinstance(step, d.SendStep) and journey.id is not None
    channel = run.runtime.scope.channels.get(step.channel)
    if channel is None:  # disabled since the journey was saved: nothing can be sent
        return [
            e for e in entries if run.visit(e, key, "suppressed:channel_disabled") and run.go(e, step.next)
        ]
    message_id = message_for(run, journey, key, step)
    by_profile = {e.profile_id: e for e in entries}
    planned = plan(
        run.session.connection(), list(by_profile), step.channel, channel.capabilities.address_identifier,
        MessageTemplate.model_validate(step.content), run.policy, run.now, run.tenant.timezone,
        step.marketing, events={e.profile_id: e.data for e in entries}, tenant=run.tenant.slug,
    )  # fmt: skip
    rows, outcomes = [], {}
    for item in planned:
        entry = by_profile[item.person.profile_id]
        delivery_key = send_key(journey.id, entry, key, entry.visits + 1)
        (row,) = deliveries_of(
            [item], message_id, step.channel, _constant(delivery_key),
            journey_id=journey.id, step=key, entry_id=entry.id, event=entry.data or None,
        )  # fmt: skip
        rows.append(row)
        outcomes[entry.profile_id] = (
            "sent" if row.state == DeliveryState.queued else f"suppressed:{row.reason}"
        )
    write_deliveries(run.session, run.tenant.slug, rows)
    going = []
    for entry in entries:
        run.visit(entry, key, outcomes.get(entry.profile_id, "suppressed:no_profile"))
        if run.go(entry, step.next):
            going.append(entry)
    return going


def _constant(value: str) -> Callable[[str], str]:
    return lambda _profile_id: value


def _zones(run: Run, entries: list[JourneyEntry]) -> dict[str, ZoneInfo]:
    """Each profile's time zone: its ``timezone`` trait when valid, else the tenant's."""
    tenant_zone = ZoneInfo(run.tenant.timezone)
    zones = {e.profile_id: tenant_zone for e in entries}
    query = sa.select(PROFILE.c.id, PROFILE.c.traits["timezone"].as_string())
    for profile_id, name in select_in(
        run.session.connection(), query, PROFILE.c.id, list(zones), pg_type="text"
    ):
        if name:
            try:
                zones[profile_id] = ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                pass
    return zones


def next_local(now: datetime, at: time, zone: ZoneInfo) -> datetime:
    """The next moment after ``now`` that is ``at`` on the clock in ``zone``."""
    local = now.astimezone(zone)
    moment = datetime.combine(local.date(), at, zone)
    if moment <= local:
        moment = datetime.combine(local.date() + timedelta(days=1), at, zone)
    return moment.astimezone(now.tzinfo)


def wait(
    run: Run, journey: Journey, key: str, step: d._Step, entries: list[JourneyEntry]
) -> list[JourneyEntry]:
    """Wait a duration, or until the next such local time (the profile's zone, else the tenant's)."""
    assert isinstance(step, d.WaitStep)
    zones = _zones(run, entries) if step.until else {}
    for entry in entries:
        run.visit(entry, key, "waiting")
        if step.seconds is not None:
            run.wait(entry, later(run.now, step.seconds))
        else:
            assert step.until is not None
            run.wait(entry, next_local(run.now, d.clock_time(step.until), zones[entry.profile_id]))
    return []


def wait_for_event(
    run: Run, journey: Journey, key: str, step: d._Step, entries: list[JourneyEntry]
) -> list[JourneyEntry]:
    """Wait for the profile's next such event, or the timeout."""
    assert isinstance(step, d.WaitForEventStep)
    for entry in entries:
        run.visit(entry, key, "waiting")
        run.wait(entry, later(run.now, step.timeout_seconds), step.event)
    return []


def _rule(run: Run, step: d.BranchStep) -> r.Rule:
    key = ("rule", json_dumps(step.rule))
    if key not in run.cache:
        stored = run.cache.get("segments")
        if stored is None:
            segments = run.session.exec(select(Segment).where(col(Segment.archived_at).is_(None)))
            stored = run.cache["segments"] = {s.id: s.rule for s in segments}
        context = r.RuleContext(segment_rule=stored.get, conditions=run.runtime.scope.conditions)
        run.cache[key] = r.parse_rule(step.rule, context)
    return run.cache[key]  # type: ignore[no-any-return]


def branch(
    run: Run, journey: Journey, key: str, step: d._Step, entries: list[JourneyEntry]
) -> list[JourneyEntry]:
    """Evaluate the rule for each profile now: ``yes`` or ``no``."""
    assert isinstance(step, d.BranchStep)
    clock = run.clock
    try:
        rule = _rule(run, step)
    except r.RuleError:  # a segment or plugin condition it used is gone: nobody matches
        rule = None
    facts = {}
    if rule is not None:
        facts = ev.load_facts(run.session, [e.profile_id for e in entries], ev.needs_of([rule], clock))
    going = []
    for entry in entries:
        found = facts.get(entry.profile_id)
        yes = rule is not None and found is not None and ev.evaluate(rule, found, clock)
        run.visit(entry, key, "yes" if yes else "no")
        if run.go(entry, step.yes if yes else step.no):
            going.append(entry)
    return going


def split(
    run: Run, journey: Journey, key: str, step: d._Step, entries: list[JourneyEntry]
) -> list[JourneyEntry]:
    """Choose a branch by weight, the same for an entry however often it is run; or the hold-out."""
    assert isinstance(step, d.SplitStep)
    total = step.holdout + sum(b.weight for b in step.branches)
    going = []
    for entry in entries:
        assert entry.id is not None
        point = choice(entry.id, key) * total
        if point < step.holdout:
            run.visit(entry, key, "holdout")
            run.end(entry, EntryState.holdout)
            continue
        point -= step.holdout
        index = len(step.branches) - 1
        for i, option in enumerate(step.branches):
            if point < option.weight:
                index = i
                break
            point -= option.weight
        chosen = step.branches[index]
        run.visit(entry, key, f"branch {chosen.label or chosen.next or index + 1}")
        if run.go(entry, chosen.next):
            going.append(entry)
    return going


def update_trait(
    run: Run, journey: Journey, key: str, step: d._Step, entries: list[JourneyEntry]
) -> list[JourneyEntry]:
    """Set the trait on each profile (an identify event from ``journey``, applied at once)."""
    assert isinstance(step, d.UpdateTraitStep)
    changes = [
        TraitChange(e.profile_id, {step.trait: step.value}, send_key(journey.id or 0, e, key, e.visits + 1))
        for e in entries
    ]
    done = set_traits(run.session, run.tenant.slug, changes, source="journey", at=run.now)
    run.changed |= done
    going = []
    for entry in entries:
        run.visit(entry, key, "updated" if entry.profile_id in done else "skipped:no_profile")
        if run.go(entry, step.next):
            going.append(entry)
    return going


def assign_offer(
    run: Run, journey: Journey, key: str, step: d._Step, entries: list[JourneyEntry]
) -> list[JourneyEntry]:
    """Assign the offer to each profile (a profile that has its coupon already keeps it)."""
    assert isinstance(step, d.AssignOfferStep)
    try:
        offers.assign(run.session, step.offer_id, [e.profile_id for e in entries], f"journey:{journey.id}",
                      now=run.now, tenant_slug=run.runtime.tenant.slug)  # fmt: skip
        outcome = "assigned"
    except offers.OfferNotFound:  # deleted since the journey was saved
        outcome = "skipped:offer_missing"
    except offers.CouponRefused as exc:  # archived or over since the journey was saved
        outcome = f"skipped:offer_{exc.code}"
    going = []
    for entry in entries:
        run.visit(entry, key, outcome)
        if run.go(entry, step.next):
            going.append(entry)
    return going


def _pass_holders(run: Run, template_id: int | None, profile_ids: list[str]) -> set[str]:
    """Those of ``profile_ids`` holding a live wallet pass (of the template; ``None``: of any)."""
    query = select(WalletPass.profile_id).where(
        col(WalletPass.profile_id).in_(profile_ids), WalletPass.state == PassState.active
    )
    if template_id is not None:
        query = query.where(WalletPass.template_id == template_id)
    return set(run.session.exec(query.distinct()))


def update_pass(
    run: Run, journey: Journey, key: str, step: d._Step, entries: list[JourneyEntry]
) -> list[JourneyEntry]:
    """Have the live wallet passes of each profile re-issued now (those without one are skipped)."""
    assert isinstance(step, d.UpdatePassStep)
    profile_ids = [e.profile_id for e in entries]
    holders = _pass_holders(run, step.template_id, profile_ids)
    notices.update_passes(run.session, run.tenant.slug, step.template_id, sorted(holders))
    going = []
    for entry in entries:
        run.visit(entry, key, "updated" if entry.profile_id in holders else "skipped:no_pass")
        if run.go(entry, step.next):
            going.append(entry)
    return going


def _notice_outcome(said: str | None) -> str:
    """A visit's outcome from what :func:`core.passes.notices.put_notice` said for its profile."""
    if said is None:
        return "skipped:no_pass"
    if said.startswith(NOT_PUT):
        return "skipped:missing_value" if "has no value" in said else "skipped:message_invalid"
    return "notified"


def notify_on_pass(
    run: Run, journey: Journey, key: str, step: d._Step, entries: list[JourneyEntry]
) -> list[JourneyEntry]:
    """Put the message, personalized, on each profile's live wallet passes: their lock screens show it."""
    assert isinstance(step, d.NotifyOnPassStep)
    said = notices.put_notice(run.session, run.tenant.slug, step.template_id, [e.profile_id for e in entries],
                              step.message)  # fmt: skip
    going = []
    for entry in entries:
        run.visit(entry, key, _notice_outcome(said.get(entry.profile_id)))
        if run.go(entry, step.next):
            going.append(entry)
    return going


def exit_(
    run: Run, journey: Journey, key: str, step: d._Step, entries: list[JourneyEntry]
) -> list[JourneyEntry]:
    """Leave the journey."""
    for entry in entries:
        run.visit(entry, key, "exit")
        run.end(entry, EntryState.exited)
    return []


HANDLERS: dict[type[d._Step], Handler] = {
    d.SendStep: send,
    d.WaitStep: wait,
    d.WaitForEventStep: wait_for_event,
    d.BranchStep: branch,
    d.SplitStep: split,
    d.UpdateTraitStep: update_trait,
    d.AssignOfferStep: assign_offer,
    d.UpdatePassStep: update_pass,
    d.NotifyOnPassStep: notify_on_pass,
    d.ExitStep: exit_,
}
