"""The send job: a batch of queued deliveries through their channel, within the rate limits.

For each delivery due: re-check consent (it may have been withdrawn since the delivery was
written), render the personalized content in the profile's language, track its links, let the
channel check it (or suppress it: outside a customer-service window, say), then hand the batch to
the channel's ``deliver``. Each result is written back: sent (with the provider's id), failed for
good (with the provider's reason code), or retryable, which re-queues the delivery with
exponential backoff that honours ``Retry-After``; addresses the provider called gone are retired.
A worker that dies mid-send leaves the job to the sweeper; the re-run sends again with the same
idempotency keys, which the provider drops as repeats.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ValidationError
from sqlmodel import Session, col, select

from core.db.base import utcnow
from core.db.bulk import select_in, update_rows
from core.db.engines import control_session, tenant_engine
from core.delivery import rates
from core.delivery.links import open_url, track_links
from core.delivery.models import Delivery, DeliveryState, Message
from core.delivery.outbox import queue_sends
from core.delivery.policy_store import get_policy
from core.delivery.recipients import RecipientData, load_recipients
from core.messages.personalization import MessageTemplate, MissingValue, TemplateInvalid, render
from core.plugin_api import (
    Channel,
    ChannelContext,
    DeliveryResult,
    DeliveryStatus,
    OutboundMessage,
    PermanentDeliveryError,
    ProfileSnapshot,
    TransientDeliveryError,
)
from core.plugins import get_host
from core.profiles.service import retire_identifiers
from core.queue.outbox import backoff
from core.tenancy.errors import TenancyError
from core.tenancy.models import Tenant
from core.tenancy.plugin_settings import channel_context
from core.tenancy.tenants import get_tenant

log = logging.getLogger(__name__)
DELIVERY = Delivery.__table__  # type: ignore[attr-defined]
MAX_ATTEMPTS = 8
# A job may start a moment before its deliveries are due (clocks of workers differ slightly).
DUE_SLACK = timedelta(seconds=2)


@dataclass(slots=True)
class _Due:
    """What sending reads and writes of one queued delivery (loaded without the ORM: 200 a job)."""

    id: int
    idempotency_key: str
    message_id: int
    profile_id: str
    channel: str
    address: str | None
    test: bool
    event: dict[str, Any] | None
    state: DeliveryState
    reason: str | None
    detail: str | None
    language: str | None
    links: list[str] | None
    attempts: int
    due_at: datetime
    provider_id: str | None
    sent_at: datetime | None
    failed_at: datetime | None


_DUE_COLUMNS = [DELIVERY.c[name] for name in _Due.__slots__]


@dataclass
class _Route:
    """How one channel is reached for this tenant now (or why it cannot be)."""

    channel: Channel | None
    ctx: ChannelContext | None
    buckets: list[rates.Bucket] = field(default_factory=list)
    problem: str | None = None


@dataclass
class _Outcome:
    """What to write back to one delivery."""

    state: DeliveryState
    reason: str | None = None
    detail: str | None = None
    provider_id: str | None = None
    retry_after: float | None = None
    retryable: bool = False
    attempted: bool = False  # the channel was asked (an attempt), or it was settled before that
    gone: list[str] = field(default_factory=list)  # addresses the provider called gone


def send_deliveries(tenant_slug: str, payload: dict[str, Any]) -> None:
    """Job ``core.send_deliveries``: send the deliveries ``payload["ids"]`` that are queued and due."""
    ids = [int(i) for i in payload.get("ids", [])]
    with control_session() as control:
        tenant = get_tenant(control, tenant_slug)
    engine = tenant_engine(tenant.database)
    with Session(engine, expire_on_commit=False) as session:
        rows = _due_rows(session, ids)
        if not rows:
            return
        policy = get_policy(session)
        routes = _routes(tenant, {row.channel for row in rows}, policy.channel_rates, policy.tenant_rate)
        outcomes, outbound = _prepare(session, tenant, rows, routes)
        # Tracked links are stored before their message leaves (a click may come back at once);
        # the language of the others is written with their outcome.
        linked = {row.id for row in rows if row.id in outbound and row.links}
        if outcomes or linked:
            _write(session, tenant.slug, rows, outcomes, prepared=linked)
            session.commit()
    by_channel: defaultdict[str, list[OutboundMessage]] = defaultdict(list)
    for channel_key, message in outbound.values():
        by_channel[channel_key].append(message)
    for channel_key, messages in by_channel.items():
        route = routes[channel_key]
        results = _deliver(route, messages)
        with Session(engine, expire_on_commit=False) as session:
            sent_rows = [row for row in rows if row.id in results]
            _write(session, tenant.slug, sent_rows, results)
            gone = {address for outcome in results.values() for address in outcome.gone}
            if gone and route.channel is not None and route.channel.capabilities.address_identifier:
                retire_identifiers(session.connection(), route.channel.capabilities.address_identifier, gone)
            session.commit()


def _due_rows(session: Session, ids: list[int]) -> list[_Due]:
    query = sa.select(*_DUE_COLUMNS).where(
        DELIVERY.c.state == DeliveryState.queued, DELIVERY.c.due_at <= utcnow() + DUE_SLACK
    )
    found = select_in(session.connection(), query, DELIVERY.c.id, ids, pg_type="integer")
    return sorted((_Due(*row) for row in found), key=lambda due: due.id)


def _routes(
    tenant: Tenant, channels: set[str], channel_rates: dict[str, float], tenant_rate: float | None
) -> dict[str, _Route]:
    host = get_host()
    routes = {}
    with control_session() as control:
        for key in channels:
            registered = host.channels.get(key)
            if registered is None:
                routes[key] = _Route(None, None, problem=f"Channel {key!r} is not installed.")
                continue
            try:
                ctx = channel_context(control, tenant, host, key)
            except TenancyError as exc:
                routes[key] = _Route(None, None, problem=str(exc))
                continue
            channel = registered.item
            limits = [channel.capabilities.rate_limit_per_second, channel_rates.get(key)]
            routes[key] = _Route(channel, ctx, rates.buckets_for(tenant.slug, key, limits, tenant_rate))
    return routes


def _prepare(
    session: Session, tenant: Tenant, rows: list[_Due], routes: dict[str, _Route]
) -> tuple[dict[int, _Outcome], dict[int, tuple[str, OutboundMessage]]]:
    """Outcomes for deliveries that cannot go, and the outbound messages of those that can."""
    outcomes: dict[int, _Outcome] = {}
    outbound: dict[int, tuple[str, OutboundMessage]] = {}
    wanted = select(Message).where(col(Message.id).in_({r.message_id for r in rows}))
    # Parsed once per message: a batch of 200 deliveries usually shares one.
    messages = {m.id: (m.marketing, MessageTemplate.model_validate(m.content)) for m in session.exec(wanted)}
    by_channel: defaultdict[str, list[_Due]] = defaultdict(list)
    for row in rows:
        by_channel[row.channel].append(row)
    for channel_key, channel_rows in by_channel.items():
        route = routes[channel_key]
        if route.channel is None or route.ctx is None:
            for row in channel_rows:
                outcomes[row.id] = _Outcome(DeliveryState.failed, "channel_unavailable", route.problem)
            continue
        address_type = route.channel.capabilities.address_identifier
        profile_ids = [r.profile_id for r in channel_rows]
        people = load_recipients(
            session.connection(), profile_ids, channel_key, address_type, tenant=tenant.slug,
            inbound_event=route.channel.capabilities.inbound_event,
        )  # fmt: skip
        for row in channel_rows:
            found = _outbound(tenant, row, messages.get(row.message_id), people.get(row.profile_id), route)
            if isinstance(found, _Outcome):
                outcomes[row.id] = found
            else:
                outbound[row.id] = (channel_key, found)
    return outcomes, outbound


def _outbound(
    tenant: Tenant,
    row: _Due,
    message: tuple[bool, MessageTemplate] | None,
    person: RecipientData | None,
    route: _Route,
) -> _Outcome | OutboundMessage:
    """The message (whether it is marketing, its content) for one delivery, or why it does not go."""
    assert route.channel is not None and route.ctx is not None
    if message is None:
        return _Outcome(DeliveryState.failed, "message_missing", "The message of this delivery is gone.")
    if person is None:
        return _Outcome(DeliveryState.suppressed, "profile_gone", "The profile was erased or merged.")
    marketing, content = message
    if marketing and not person.consented and not row.test:  # a test send goes to whom it is told
        return _Outcome(DeliveryState.suppressed, "no_consent", "Consent was withdrawn before sending.")
    context = person.context(row.event)
    try:
        language, fields = render(content, context, person.locale)
    except MissingValue as exc:
        return _Outcome(DeliveryState.failed, "missing_value", str(exc))
    except TemplateInvalid as exc:
        return _Outcome(DeliveryState.failed, "invalid_template", str(exc)[:1000])
    tracked = {
        name: text for name, text in fields.items() if name not in untracked_fields(route.channel.Template)
    }
    tracked, targets = track_links(tracked, tenant.slug, row.id, route.ctx.public_url)
    fields = {**fields, **tracked}
    try:
        template = route.channel.Template.model_validate(fields)
    except ValidationError as exc:
        return _Outcome(DeliveryState.failed, "invalid_content", _validation_text(exc))
    address_type = route.channel.capabilities.address_identifier
    addresses = [row.address, *(a for a in person.addresses if a != row.address)] if row.address else []
    # Built without validation: every value comes from the database or from validated content.
    snapshot = ProfileSnapshot.model_construct(
        id=person.profile_id, identifiers={address_type: addresses} if address_type and addresses else {},
        traits=person.traits, consents={row.channel: person.consented}, locale=person.locale,
        timezone=person.timezone, last_inbound_at=person.last_inbound_at,
    )  # fmt: skip
    problems = route.channel.validate(route.ctx, template, snapshot)
    if problems and all(problem.suppress for problem in problems):
        reason = problems[0].reason_code or "not_now"
        return _Outcome(DeliveryState.suppressed, reason, "; ".join(p.message for p in problems)[:1000])
    if problems:
        detail = "; ".join(f"{p.field}: {p.message}" for p in problems if not p.suppress)
        return _Outcome(DeliveryState.failed, "invalid_for_channel", detail[:1000])
    row.language, row.links = language, targets or None
    return OutboundMessage.model_construct(
        delivery_id=str(row.id), idempotency_key=row.idempotency_key, profile=snapshot,
        address=row.address or "", template=template.model_dump(mode="json"), variables=context,
        open_url=open_url(route.ctx.public_url, tenant.slug, row.id),
    )  # fmt: skip


@cache
def untracked_fields(template: type[BaseModel]) -> frozenset[str]:
    """The fields of a channel's ``Template`` whose links stay as written (media, deep links).

    A field is left alone when declared with ``Field(json_schema_extra={"track_links": False})``.
    """
    return frozenset(
        name
        for name, info in template.model_fields.items()
        if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("track_links") is False
    )


def _validation_text(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())[:1000]


def _deliver(route: _Route, messages: list[OutboundMessage]) -> dict[int, _Outcome]:
    """Send within the rate limits; an outcome per delivery id."""
    assert route.channel is not None and route.ctx is not None
    outcomes: dict[int, _Outcome] = {}
    pending = list(messages)
    while pending:
        granted = rates.acquire(route.buckets, len(pending))
        chunk, pending = pending[:granted], pending[granted:]
        try:
            results = route.channel.deliver(route.ctx, chunk)
        except TransientDeliveryError as exc:
            results = [_failed(m, exc.reason_code, str(exc), True, exc.retry_after) for m in chunk]
        except PermanentDeliveryError as exc:
            results = [_failed(m, exc.reason_code, str(exc), False, None) for m in chunk]
        except Exception as exc:  # noqa: BLE001 - a broken plugin fails its deliveries, retryably
            log.exception("channel %s failed to deliver", route.channel.key)
            results = [_failed(m, "channel_error", f"{type(exc).__name__}: {exc}", True, None) for m in chunk]
        answered = {r.delivery_id: r for r in results}
        for message in chunk:
            result = answered.get(message.delivery_id) or _failed(
                message, "no_result", "The channel returned no result for this message.", True, None
            )
            outcomes[int(message.delivery_id)] = _outcome_of(result)
    return outcomes


def _failed(
    message: OutboundMessage, code: str, detail: str, retryable: bool, retry_after: float | None
) -> DeliveryResult:
    return DeliveryResult(delivery_id=message.delivery_id, status=DeliveryStatus.failed, reason_code=code,
                          detail=detail[:1000], retryable=retryable, retry_after=retry_after)  # fmt: skip


def _outcome_of(result: DeliveryResult) -> _Outcome:
    gone = list(result.gone_addresses)
    if result.status != DeliveryStatus.failed:
        return _Outcome(DeliveryState.sent, provider_id=result.provider_id, attempted=True, gone=gone)
    return _Outcome(DeliveryState.failed, result.reason_code or "failed", result.detail,
                    retry_after=result.retry_after, retryable=result.retryable, attempted=True,
                    gone=gone)  # fmt: skip


def _write(
    session: Session,
    tenant: str,
    rows: list[_Due],
    outcomes: dict[int, _Outcome],
    prepared: set[int] | None = None,
) -> None:
    """Write outcomes (and the language and links of ``prepared`` rows); re-queue retries."""
    now = utcnow()
    updates: list[dict[str, Any]] = []
    retries: list[tuple[int, datetime]] = []
    for row in rows:
        delivery_id = row.id
        outcome = outcomes.get(delivery_id)
        if outcome is None and (prepared is None or delivery_id not in prepared):
            continue
        values = _values(row)
        if outcome is not None:
            _apply(values, outcome, now)
            if values["state"] == DeliveryState.queued:
                retries.append((delivery_id, values["due_at"]))
        updates.append(values)
    update_rows(session.connection(), DELIVERY, updates)
    queue_sends(session, tenant, retries)


def _values(row: _Due) -> dict[str, Any]:
    return {"id": row.id, "state": row.state, "reason": row.reason, "detail": row.detail,
            "attempts": row.attempts, "due_at": row.due_at, "provider_id": row.provider_id,
            "sent_at": row.sent_at, "failed_at": row.failed_at, "language": row.language,
            "links": row.links}  # fmt: skip


def _apply(values: dict[str, Any], outcome: _Outcome, now: datetime) -> None:
    if outcome.attempted:
        values["attempts"] += 1
    if outcome.state == DeliveryState.sent:
        values.update(
            state=DeliveryState.sent, provider_id=outcome.provider_id, sent_at=now, reason=None, detail=None
        )
        return
    if outcome.retryable:
        if values["attempts"] < MAX_ATTEMPTS:
            values.update(state=DeliveryState.queued, reason=outcome.reason, detail=outcome.detail,
                          due_at=now + backoff(values["attempts"], outcome.retry_after))  # fmt: skip
            return
        detail = f"Gave up after {values['attempts']} attempts: {outcome.detail or ''}".strip()
        outcome = _Outcome(DeliveryState.failed, outcome.reason or "retries_exhausted", detail)
    values.update(state=outcome.state, reason=outcome.reason, detail=(outcome.detail or "")[:1000] or None)
    if outcome.state == DeliveryState.failed:
        values["failed_at"] = now
