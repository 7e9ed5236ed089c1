"""Campaigns: content checked on save, suppressions by consent, address, caps and quiet hours,
missing values caught before launch, scheduled launches, and reports that equal the rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import select

from core.campaigns import service as campaigns
from core.campaigns.models import CampaignStatus
from core.db.base import utcnow
from core.delivery.models import Delivery, DeliveryState
from core.delivery.planning import PlanSummary
from core.delivery.policy_store import save_policy
from core.messages.personalization import TemplateInvalid
from core.messages.policy import Cap, Policy, QuietHours
from core.reporting.report import report
from tests.delivery.conftest import CHANNEL, content

DELIVERY = Delivery.__table__  # type: ignore[attr-defined]


def _campaign(shop, name: str = "Winter", body: str = "Hi {{ traits.first_name }}", **extra):
    data = campaigns.CampaignIn(name=name, segment_id=extra.pop("segment", None) or shop.segment(name=f"All {name}"),
                                channel=CHANNEL, content=content(body), **extra)  # fmt: skip
    campaign = campaigns.create_campaign(shop.session, shop.tenant, shop.scope(), data, "marketer")
    shop.session.commit()
    return campaign


def _states(shop, campaign_id: int) -> dict[str, tuple[str, str | None]]:
    shop.session.expire_all()
    rows = shop.session.exec(select(Delivery).where(Delivery.campaign_id == campaign_id)).all()
    return {r.profile_id: (r.state.value, r.reason) for r in rows}


def test_a_template_with_a_syntax_error_is_refused_with_its_line(shop) -> None:
    segment = shop.segment()
    data = campaigns.CampaignIn(name="Broken", segment_id=segment, channel=CHANNEL,
                                content=content("Hello\n{{ traits.first_name "))  # fmt: skip
    with pytest.raises(TemplateInvalid) as refused:
        campaigns.create_campaign(shop.session, shop.tenant, shop.scope(), data, "marketer")
    (problem,) = refused.value.problems
    assert (problem.language, problem.field, problem.line) == ("en", "body", 2)


def test_an_unknown_variable_or_field_is_refused_clearly(shop) -> None:
    segment = shop.segment()
    data = campaigns.CampaignIn(name="Odd", segment_id=segment, channel=CHANNEL,
                                content={"variants": {"en": {"body": "{{ first_name }}", "subject": "x"}},
                                         "fallback": "en"})  # fmt: skip
    with pytest.raises(TemplateInvalid) as refused:
        campaigns.create_campaign(shop.session, shop.tenant, shop.scope(), data, "marketer")
    messages = " | ".join(p.message for p in refused.value.problems)
    assert "unknown variable(s) first_name" in messages and "no field 'subject'" in messages


def test_consent_address_and_caps_suppress_with_their_reason_and_the_confirmation_says_so(shop) -> None:
    consenting = shop.customers(3)
    from core.ingest.service import accept
    from core.profiles.jobs import process_events

    accept(
        shop.session, "shop", [{"type": "identify", "userId": "c0", "traits": {"consent": {CHANNEL: False}}}]
    )
    process_events("shop", {})
    save_policy(shop.session, Policy(channel_caps={CHANNEL: Cap(messages=1, hours=24)}), "admin")
    shop.session.commit()
    first = _campaign(shop, "First")
    campaigns.launch(shop.session, shop.tenant, shop.scope(), first, "marketer")
    shop.session.commit()
    shop.run_jobs()
    assert _states(shop, first.id)[consenting[0]] == ("suppressed", "no_consent")
    second = _campaign(shop, "Second")
    summary = campaigns.confirmation(shop.session, shop.tenant, shop.scope(), second)
    assert summary.targeted == 3 and summary.reach == 0
    assert summary.suppressed == {"frequency_cap": 2, "no_consent": 1}
    campaigns.launch(shop.session, shop.tenant, shop.scope(), second, "marketer")
    shop.session.commit()
    shop.run_jobs()
    assert sorted(_states(shop, second.id).values()) == [("suppressed", "frequency_cap")] * 2 + [
        ("suppressed", "no_consent")
    ]
    found = report(shop.session, campaign_id=second.id)
    assert found.suppressed == {"frequency_cap": 2, "no_consent": 1} and found.sent == 0


def test_the_confirmation_sums_the_same_a_chunk_at_a_time(shop, monkeypatch) -> None:
    """Planned a chunk of the audience at a time (a large audience never sits in memory whole), it
    counts every fate and lists the profiles lacking a value as one pass over everyone would."""
    shop.customers(3)
    no_consent = shop.customers(1, consent=False)  # the first of the three withdraws
    from core.ingest.service import accept
    from core.profiles.jobs import process_events

    nameless = [{"type": "identify", "userId": f"n{i}", "traits": {"email": f"n{i}@example.com",
                 "consent": {CHANNEL: True}}} for i in range(3)]  # fmt: skip
    accept(shop.session, "shop", nameless)
    process_events("shop", {})
    campaign = _campaign(shop)
    whole = campaigns.confirmation(shop.session, shop.tenant, shop.scope(), campaign)
    monkeypatch.setattr(campaigns, "LAUNCH_CHUNK", 2)
    chunked = campaigns.confirmation(shop.session, shop.tenant, shop.scope(), campaign)
    assert figures(chunked) == figures(whole)
    assert (whole.targeted, whole.to_send) == (6, 2)
    assert whole.suppressed == {"missing_value": 3, "no_consent": 1}
    lacking = whole.missing["traits.first_name"]
    assert len(lacking) == 3 and not set(no_consent) & set(lacking)


def figures(summary: PlanSummary) -> tuple:
    """A confirmation's figures; the profiles listed as lacking a value in any order."""
    missing = {name: sorted(ids) for name, ids in summary.missing.items()}
    return summary.targeted, summary.to_send, summary.deferred, summary.suppressed, missing


def test_quiet_hours_defer_a_send_and_never_drop_it(shop) -> None:
    shop.customers(1, timezone="UTC")
    now = utcnow()
    start = (now - timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (now + timedelta(hours=2)).time().replace(second=0, microsecond=0)
    save_policy(shop.session, Policy(quiet_hours=QuietHours(start=start, end=end)), "admin")
    shop.session.commit()
    campaign = _campaign(shop)
    summary = campaigns.confirmation(shop.session, shop.tenant, shop.scope(), campaign)
    assert (summary.deferred, summary.to_send, summary.reach) == (1, 0, 1)
    campaigns.launch(shop.session, shop.tenant, shop.scope(), campaign, "marketer")
    shop.session.commit()
    shop.run_jobs()
    (row,) = shop.session.exec(select(Delivery)).all()
    assert row.state == DeliveryState.queued and row.reason == "quiet_hours"
    assert row.due_at > now + timedelta(hours=1, minutes=50) and shop.provider.messages == []
    shop.session.connection().execute(sa.update(DELIVERY).values(due_at=utcnow()))
    from core.queue.models import Job

    shop.session.connection().execute(sa.update(Job.__table__).values(due_at=utcnow()))  # type: ignore[attr-defined]
    shop.session.commit()
    shop.run_jobs()
    shop.session.expire_all()
    (row,) = shop.session.exec(select(Delivery)).all()
    assert row.state == DeliveryState.sent and len(shop.provider.messages) == 1


def test_a_missing_value_is_caught_before_launch_listing_the_profiles(shop) -> None:
    ids = shop.customers(2)
    from core.ingest.service import accept
    from core.profiles.jobs import process_events

    accept(shop.session, "shop", [{"type": "identify", "userId": "c9", "traits": {"email": "c9@example.com",
                                                                                "consent": {CHANNEL: True}}}])  # fmt: skip
    process_events("shop", {})
    campaign = _campaign(shop)
    with pytest.raises(campaigns.MissingValues) as refused:
        campaigns.launch(shop.session, shop.tenant, shop.scope(), campaign, "marketer")
    (lacking,) = refused.value.missing["traits.first_name"]
    assert lacking not in ids
    campaigns.launch(shop.session, shop.tenant, shop.scope(), campaign, "marketer", skip_missing=True)
    shop.session.commit()
    shop.run_jobs()
    assert _states(shop, campaign.id)[lacking] == ("suppressed", "missing_value")
    assert (
        all(m.body.startswith("Hi Ann") for m in shop.provider.messages) and len(shop.provider.messages) == 2
    )


def test_a_scheduled_campaign_waits_for_its_time_in_the_tenants_zone(shop) -> None:
    shop.customers(1)
    campaign = _campaign(shop, scheduled_at=utcnow() + timedelta(hours=3))
    campaigns.launch(shop.session, shop.tenant, shop.scope(), campaign, "marketer")
    shop.session.commit()
    assert campaign.status == CampaignStatus.scheduled
    shop.run_jobs()
    assert shop.session.exec(select(Delivery)).all() == [] and shop.provider.messages == []
    from core.queue.models import Job

    (job,) = shop.session.exec(select(Job).where(Job.kind == campaigns.LAUNCH_CAMPAIGN)).all()
    assert job.status == "pending" and job.due_at == campaign.scheduled_at


def test_preview_and_test_send_use_the_profiles_language_and_stay_out_of_the_report(shop) -> None:
    (pid,) = shop.customers(1, locale="fr_FR")
    segment = shop.segment()
    data = campaigns.CampaignIn(name="Bilingual", segment_id=segment, channel=CHANNEL,
                                content=content("Hi", fr={"body": "Salut {{ traits.first_name }}"}))  # fmt: skip
    campaign = campaigns.create_campaign(shop.session, shop.tenant, shop.scope(), data, "marketer")
    from core.db.engines import control_session
    from core.plugins import get_host
    from core.tenancy.plugin_settings import channel_context

    with control_session() as control:
        ctx = channel_context(control, shop.tenant, get_host(), CHANNEL)
    shown = campaigns.preview(shop.session, shop.scope(), ctx, campaign, pid)
    assert (
        shown.language == "fr"
        and shown.fields == {"body": "Salut Ann0"}
        and "Salut Ann0" in (shown.html or "")
    )
    campaigns.test_send(shop.session, shop.tenant, shop.scope(), campaign, pid)
    shop.session.commit()
    shop.run_jobs()
    assert [m.body for m in shop.provider.messages] == ["Salut Ann0"]
    assert report(shop.session, campaign_id=campaign.id).targeted == 0


def test_report_figures_equal_a_direct_count_of_deliveries(shop) -> None:
    shop.customers(6)
    shop.provider.reject("c2@example.com")
    campaign = _campaign(shop)
    campaigns.launch(shop.session, shop.tenant, shop.scope(), campaign, "marketer")
    shop.session.commit()
    shop.run_jobs()
    found = report(shop.session, campaign_id=campaign.id)
    rows = shop.session.exec(select(Delivery).where(Delivery.campaign_id == campaign.id)).all()
    assert found.targeted == len(rows)
    assert found.sent == sum(1 for r in rows if r.sent_at)
    assert found.failed == {"invalid_recipient": sum(1 for r in rows if r.state == DeliveryState.failed)}
    assert sum(day.get("sent", 0) for day in found.over_time.values()) == found.sent == 5
    campaigns.settle(shop.session, campaign)
    assert campaign.status == CampaignStatus.completed


def test_a_channel_that_cannot_preview_yet_still_shows_the_texts(
    shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    (pid,) = shop.customers(1)
    from tessera_push_fcm.channel import FcmChannel

    from core.db.engines import control_session
    from core.plugin_api import ChannelNotImplemented
    from core.plugins import get_host
    from core.tenancy.plugin_settings import channel_context, set_enabled

    def not_yet(self: FcmChannel, ctx: object, template: object, profile: object) -> None:
        raise ChannelNotImplemented("push_fcm", "preview")

    monkeypatch.setattr(FcmChannel, "render_preview", not_yet)  # as a channel without previews would be

    with control_session() as control:
        set_enabled(control, shop.tenant, get_host(), "push_fcm", True)
        control.commit()
        ctx = channel_context(control, shop.tenant, get_host(), "push_fcm")
    data = campaigns.CampaignIn(name="Push", segment_id=shop.segment(), channel="push_fcm", content={
        "variants": {"en": {"title": "Hi {{ traits.first_name }}", "body": "News"}}, "fallback": "en"})  # fmt: skip
    campaign = campaigns.create_campaign(shop.session, shop.tenant, shop.scope(), data, "marketer")
    shown = campaigns.preview(shop.session, shop.scope(), ctx, campaign, pid)
    assert shown.fields["title"] == "Hi Ann0" and shown.html is None and "preview" in (shown.note or "")
