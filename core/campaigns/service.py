"""Campaigns: create and edit, preview and test-send, confirm the reach, launch now or later.

A launch writes one delivery per member of the segment (queued, deferred by quiet hours, or
suppressed with its reason) with their send jobs, a chunk of members per transaction: sending
starts as soon as the first chunk is written, a crash mid-launch leaves whole chunks, and the
re-run writes only what is missing (deliveries are unique per campaign and profile).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from core.campaigns.models import Campaign, CampaignStatus
from core.db.base import utcnow
from core.db.bulk import chunks
from core.delivery.models import Delivery, DeliveryState, Message
from core.delivery.outbox import NewDelivery, write_deliveries
from core.delivery.planning import Planned, PlanSummary, deliveries_of, plan, summarize
from core.delivery.policy_store import get_policy
from core.delivery.recipients import RecipientData, load_recipients
from core.messages.content import check_content
from core.messages.personalization import MessageTemplate, render
from core.plugin_api import Channel, ChannelContext, DeliveryError, ProfileSnapshot
from core.queue.outbox import add_job
from core.segments.models import Segment
from core.segments.service import TenantScope, check_rule
from core.segments.sql import give_room, members_query
from core.tenancy.models import Tenant

LAUNCH_CAMPAIGN = "core.launch_campaign"
# Members planned and written per transaction at launch: ten send jobs' worth, so the first sends
# leave a fraction of a second after the launch starts, whatever the audience's size.
LAUNCH_CHUNK = 2_000
EDITABLE = (CampaignStatus.draft, CampaignStatus.scheduled)
DELIVERY = Delivery.__table__  # type: ignore[attr-defined]


class CampaignNotFound(LookupError):
    """No campaign has this id."""


class CampaignRefused(ValueError):
    """The change or launch is not possible now; ``str()`` says why and what to do."""


class MissingValues(CampaignRefused):
    """Some profiles lack a value the message uses; ``missing`` lists them per variable."""

    def __init__(self, missing: dict[str, list[str]]):
        self.missing = missing
        names = ", ".join(sorted(missing))
        super().__init__(f"Some profiles have no value for {names}: fix the data or launch without them.")


class CampaignIn(BaseModel):
    """What a marketer or a script gives to create or change a campaign."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    segment_id: int
    channel: str = Field(min_length=1, max_length=100)
    content: dict[str, Any]
    marketing: bool = True
    goal_event: str | None = Field(default=None, max_length=200)
    goal_days: int = Field(default=7, ge=1, le=90)
    scheduled_at: datetime | None = Field(
        default=None, description="When to send; without an offset, in the tenant's time zone."
    )


def _channel(scope: TenantScope, key: str) -> Channel:
    channel = scope.channels.get(key)
    if channel is None:
        enabled = ", ".join(sorted(scope.channels)) or "none"
        raise CampaignRefused(f"Channel {key!r} is not enabled for this tenant (enabled: {enabled}).")
    return channel


def _segment(session: Session, segment_id: int) -> Segment:
    segment = session.get(Segment, segment_id)
    if segment is None or segment.archived_at is not None:
        raise CampaignRefused(f"Segment {segment_id} does not exist or is archived.")
    return segment


def _aware(moment: datetime | None, zone: str) -> datetime | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(zone))).astimezone(UTC)


def _checked(
    session: Session, tenant: Tenant, scope: TenantScope, data: CampaignIn, campaign_id: int | None
) -> dict[str, Any]:
    _segment(session, data.segment_id)
    template = check_content(_channel(scope, data.channel), data.content)
    taken = session.exec(select(Campaign.id).where(Campaign.name == data.name.strip())).first()
    if taken is not None and taken != campaign_id:
        raise CampaignRefused(f"A campaign is already named {data.name.strip()!r}.")
    values = data.model_dump()
    values.update(
        name=data.name.strip(),
        content=template.model_dump(),
        scheduled_at=_aware(data.scheduled_at, tenant.timezone),
    )
    return values


def create_campaign(
    session: Session, tenant: Tenant, scope: TenantScope, data: CampaignIn, actor: str
) -> Campaign:
    """A new draft campaign; :class:`CampaignRefused` or :class:`TemplateInvalid` if it cannot be."""
    campaign = Campaign(**_checked(session, tenant, scope, data, None), created_by=actor, updated_by=actor)
    session.add(campaign)
    session.flush()
    return campaign


def update_campaign(
    session: Session, tenant: Tenant, scope: TenantScope, campaign_id: int, data: CampaignIn, actor: str
) -> Campaign:
    """Change a campaign that has not started sending."""
    campaign = _locked(session, get_campaign(session, campaign_id))
    if campaign.status not in EDITABLE:
        raise CampaignRefused(f"Campaign {campaign.name!r} is {campaign.status}: it can no longer change.")
    for name, value in _checked(session, tenant, scope, data, campaign_id).items():
        setattr(campaign, name, value)
    campaign.updated_at, campaign.updated_by = utcnow(), actor
    if campaign.status == CampaignStatus.scheduled:
        # Re-confirming is required after a change: back to draft, the scheduled job finds nothing to do.
        campaign.status = CampaignStatus.draft
    session.add(campaign)
    return campaign


def get_campaign(session: Session, campaign_id: int) -> Campaign:
    """The campaign, or :class:`CampaignNotFound`."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise CampaignNotFound(f"No campaign {campaign_id}.")
    return campaign


def list_campaigns(session: Session) -> list[Campaign]:
    """Every campaign, newest first."""
    return list(
        session.exec(select(Campaign).order_by(col(Campaign.created_at).desc(), col(Campaign.id).desc()))
    )


def template_of(campaign: Campaign) -> MessageTemplate:
    """The campaign's content as a template."""
    return MessageTemplate.model_validate(campaign.content)


def audience(session: Session, scope: TenantScope, campaign: Campaign) -> list[str]:
    """The ids of the segment's members now (the rule evaluated live)."""
    segment = _segment(session, campaign.segment_id)
    rule = check_rule(session, segment.rule, scope.conditions, segment.id)
    give_room(session)
    query = members_query(rule, session.get_bind().dialect.name, scope.clock)
    return [pid for (pid,) in session.connection().execute(query)]


def _plan(
    session: Session, tenant: Tenant, scope: TenantScope, campaign: Campaign, members: list[str] | None = None
) -> list[Planned]:
    """The fate of each of ``members`` (by default the whole audience now)."""
    channel = _channel(scope, campaign.channel)
    members = audience(session, scope, campaign) if members is None else members
    return plan(
        session.connection(), members, campaign.channel,
        channel.capabilities.address_identifier, template_of(campaign), get_policy(session),
        scope.clock.now, tenant.timezone, campaign.marketing, tenant=tenant.slug,
    )  # fmt: skip


def confirmation(session: Session, tenant: Tenant, scope: TenantScope, campaign: Campaign) -> PlanSummary:
    """What a launch now would do: audience size, reach after suppressions, missing values.

    Planned a chunk of the audience at a time, as the launch writes it: a million members' data
    never sits in the web process at once."""
    members, summary = audience(session, scope, campaign), PlanSummary()
    for start in range(0, len(members), LAUNCH_CHUNK):
        summarize(
            _plan(session, tenant, scope, campaign, members[start : start + LAUNCH_CHUNK]), into=summary
        )
    return summary


@dataclass(frozen=True)
class PreviewResult:
    """A campaign's message for one profile: its language, fields, and the channel's rendering."""

    profile_id: str
    language: str
    fields: dict[str, str]
    html: str | None
    note: str | None = None  # why the channel shows no rendering of its own


def preview(
    session: Session, scope: TenantScope, ctx: ChannelContext, campaign: Campaign, profile_id: str
) -> PreviewResult:
    """The message as ``profile_id`` would get it; :class:`MissingValue` if a value is missing."""
    channel = _channel(scope, campaign.channel)
    people = load_recipients(
        session.connection(),
        [profile_id],
        campaign.channel,
        channel.capabilities.address_identifier,
        tenant=ctx.tenant,
    )
    person = people.get(profile_id)
    if person is None:
        raise CampaignRefused(f"No profile {profile_id}.")
    language, fields = render(template_of(campaign), person.context(), person.locale)
    if not channel.capabilities.preview:
        return PreviewResult(profile_id, language, fields, None, f"{channel.label} offers no preview.")
    try:
        rendered = channel.render_preview(
            ctx, channel.Template.model_validate(fields), _snapshot(person, campaign.channel)
        )
    except DeliveryError as exc:  # a channel that cannot preview yet still shows the texts
        return PreviewResult(profile_id, language, fields, None, str(exc))
    return PreviewResult(profile_id, language, fields, rendered.html)


def _snapshot(person: RecipientData, channel_key: str) -> ProfileSnapshot:
    return ProfileSnapshot(id=person.profile_id, traits=person.traits, consents={channel_key: person.consented},
                           locale=person.locale, timezone=person.timezone)  # fmt: skip


def _message(session: Session, campaign: Campaign) -> Message:
    message = Message(channel=campaign.channel, content=campaign.content, marketing=campaign.marketing)
    session.add(message)
    session.flush()
    return message


def test_send(
    session: Session, tenant: Tenant, scope: TenantScope, campaign: Campaign, profile_id: str
) -> int:
    """Send the message now to one chosen profile (consent, caps and quiet hours do not apply);
    the delivery id. Test sends never count in the report."""
    channel = _channel(scope, campaign.channel)
    people = load_recipients(
        session.connection(),
        [profile_id],
        campaign.channel,
        channel.capabilities.address_identifier,
        tenant=tenant.slug,
    )
    person = people.get(profile_id)
    if person is None:
        raise CampaignRefused(f"No profile {profile_id}.")
    if not person.address:
        address = channel.capabilities.address_identifier
        raise CampaignRefused(f"This profile has no {address} to send a {channel.label} message to.")
    render(template_of(campaign), person.context(), person.locale)  # a missing value refuses here
    message = _message(session, campaign)
    row = NewDelivery(
        idempotency_key=f"test:{campaign.id}:{uuid.uuid4().hex}", message_id=message.id or 0,
        profile_id=profile_id, channel=campaign.channel, address=person.address, campaign_id=campaign.id, test=True,
    )  # fmt: skip
    return write_deliveries(session, tenant.slug, [row])[0]


def launch(
    session: Session,
    tenant: Tenant,
    scope: TenantScope,
    campaign: Campaign,
    actor: str,
    skip_missing: bool = False,
) -> Campaign:
    """Confirm a campaign: it launches now, or at its scheduled time.

    Refused with :class:`MissingValues` when some members lack a value the message uses, unless
    ``skip_missing`` (those members are then suppressed with reason ``missing_value``).
    """
    if campaign.status not in EDITABLE:
        raise CampaignRefused(f"Campaign {campaign.name!r} is {campaign.status}: it was launched already.")
    if not skip_missing:  # with skip_missing the launch job's own plan suppresses them: no need to plan twice
        summary = confirmation(session, tenant, scope, campaign)
        if summary.missing:
            raise MissingValues(summary.missing)
    later = campaign.scheduled_at is not None and campaign.scheduled_at > utcnow() + timedelta(seconds=5)
    campaign.status = CampaignStatus.scheduled if later else CampaignStatus.launching
    campaign.launched_by, campaign.updated_at = actor, utcnow()
    session.add(campaign)
    # A re-confirmed schedule gets a job of its own; a job finding the campaign changed does nothing.
    key = f"campaign-launch:{campaign.id}:{(campaign.scheduled_at or utcnow()).isoformat()}"
    add_job(session, tenant.slug, LAUNCH_CAMPAIGN, {"campaign_id": campaign.id}, idempotency_key=key,
            due_at=campaign.scheduled_at if later else None)  # fmt: skip
    return campaign


def cancel(session: Session, campaign: Campaign, actor: str) -> Campaign:
    """Stop a campaign that has not launched, or the sends of one still sending (they are suppressed)."""
    _locked(session, campaign)  # waits for a chunk of deliveries being written
    if campaign.status in (CampaignStatus.completed, CampaignStatus.cancelled):
        raise CampaignRefused(f"Campaign {campaign.name!r} is {campaign.status} already.")
    session.connection().execute(
        sa.update(DELIVERY)
        .where(
            DELIVERY.c.campaign_id == campaign.id,
            DELIVERY.c.state == DeliveryState.queued,
            DELIVERY.c.test.is_(False),
        )
        .values(state=DeliveryState.suppressed, reason="cancelled")
    )
    campaign.status, campaign.updated_at, campaign.updated_by = CampaignStatus.cancelled, utcnow(), actor
    session.add(campaign)
    return campaign


def run_launch(
    session: Session, tenant: Tenant, scope: TenantScope, campaign_id: int, chunk: int = LAUNCH_CHUNK
) -> int:
    """Write the campaign's deliveries and their send jobs (the launch job); how many were written.

    Commits after each ``chunk`` of members, so their sends start while the rest is written; a
    campaign cancelled (or a schedule changed) meanwhile stops the launch before its next chunk.
    Does nothing unless the campaign is waiting to launch and due, so a stale job is harmless; a
    job run again after a crash writes only the deliveries still missing.
    """
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or not _due(campaign):
        return 0
    written = 0
    for members in [*chunks(audience(session, scope, campaign), chunk), []]:
        if not _due(_locked(session, campaign)):
            session.rollback()
            return written
        if campaign.message_id is None:  # made once: a run interrupted earlier left it, for its deliveries
            campaign.message_id = _message(session, campaign).id
        if not members:  # all written
            break
        campaign.status = CampaignStatus.launching  # no longer editable (when it was scheduled)
        rows = deliveries_of(_plan(session, tenant, scope, campaign, list(members)), campaign.message_id or 0,
                             campaign.channel, lambda pid: f"campaign:{campaign.id}:{pid}", campaign_id=campaign.id)  # fmt: skip
        written += len(write_deliveries(session, tenant.slug, rows))
        session.commit()
    campaign.status, campaign.launched_at = CampaignStatus.sending, utcnow()
    session.add(campaign)
    return written


def _due(campaign: Campaign) -> bool:
    """Whether the campaign waits to launch now (it was not cancelled, edited or put off)."""
    if campaign.status == CampaignStatus.scheduled:
        return campaign.scheduled_at is None or campaign.scheduled_at <= utcnow() + timedelta(seconds=5)
    return campaign.status == CampaignStatus.launching


def _locked(session: Session, campaign: Campaign) -> Campaign:
    """The campaign as stored now, its row locked until the transaction ends.

    The launch, :func:`cancel` and :func:`update_campaign` all lock it before they change
    anything, so a chunk of deliveries is written either before a cancel (which then suppresses
    it) or not at all, and a launch never undoes an edit.
    """
    session.refresh(campaign, with_for_update=True)
    return campaign


def settle(session: Session, campaign: Campaign) -> Campaign:
    """Mark a sending campaign completed once none of its deliveries is queued any more."""
    if campaign.status != CampaignStatus.sending:
        return campaign
    pending = (
        session.connection()
        .execute(
            sa.select(DELIVERY.c.id)
            .where(
                DELIVERY.c.campaign_id == campaign.id,
                DELIVERY.c.state == DeliveryState.queued,
                DELIVERY.c.test.is_(False),
            )
            .limit(1)  # fmt: skip
        )
        .first()
    )
    if pending is None:
        campaign.status, campaign.completed_at = CampaignStatus.completed, utcnow()
        session.add(campaign)
    return campaign
