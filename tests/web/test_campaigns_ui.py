"""The campaign pages and the sending-policy settings, through the real forms (CSRF, roles, HTMX).

A shop with five customers (in through the real ingestion and processing) and the recording
channel, sending to a local fake provider. A marketer writes a campaign, previews it, reviews and
launches it; the launch and send jobs run as a worker runs them; the report the page shows is
checked against the delivery rows themselves.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from core.audit.models import AuditEntry
from core.campaigns import service as campaigns
from core.campaigns.models import Campaign, CampaignStatus
from core.db.base import utcnow
from core.db.engines import control_session, tenant_engine
from core.delivery.models import Delivery, DeliveryState
from core.delivery.policy_store import get_policy
from core.ingest.service import accept
from core.messages.policy import Cap, Policy, QuietHours
from core.plugins import get_host
from core.profiles.jobs import process_events
from core.profiles.service import find_by_identifier
from core.segments.service import create_segment, tenant_scope
from core.tenancy.members import put_member
from core.tenancy.plugin_settings import set_enabled
from core.tenancy.tenants import get_tenant
from tests.fakes.provider import FakeProvider
from tests.plugins_host.packages import plugin_packages, recording_plugin
from tests.support import (
    PASSWORD,
    WHATSAPP_OFFERED,
    csrf_of,
    login,
    run_due_jobs,
    use_recording_channel,
    use_whatsapp_with_synced_templates,
)

__all__ = ["plugin_packages", "recording_plugin"]

TENANT = "shop"
CHANNEL = "recording_channel"
HTMX = {"HX-Request": "true"}
DELIVERY = Delivery.__table__  # type: ignore[attr-defined]
# name: (traits, consent to the channel). Ann reads French; Cid has no first name; Dee said no;
# Eve has no email (the channel's address).
CUSTOMERS: dict[str, tuple[dict[str, Any], bool]] = {
    "ann": ({"email": "ann@example.com", "first_name": "Ann", "locale": "fr_FR"}, True),
    "bob": ({"email": "bob@example.com", "first_name": "Bob"}, True),
    "cid": ({"email": "cid@example.com"}, True),
    "dee": ({"email": "dee@example.com", "first_name": "Dee"}, False),
    "eve": ({"first_name": "Eve"}, True),
}


@dataclass
class Shop:
    """The tenant, a signed-in marketer's client, the fake provider, the customers and a segment."""

    installation: Any
    client: TestClient
    database: str
    provider: FakeProvider
    people: dict[str, str]
    segment_id: int

    @property
    def csrf(self) -> str:
        return csrf_of(self.client, f"/t/{TENANT}/campaigns")

    def session(self) -> Session:
        """A session on the tenant's database."""
        return Session(tenant_engine(self.database), expire_on_commit=False)

    def form(self, body: str = "Hello {{ traits.first_name }}", **fields: str) -> dict[str, str]:
        """The campaign form as a browser posts it (English texts, sent when launched)."""
        return {"csrf_token": self.csrf, "name": "Spring sale", "segment_id": str(self.segment_id),
                "channel": CHANNEL, "lang.0": "en", "lang.0.title": "News", "lang.0.body": body,
                "fallback": "0", "marketing": "on", "goal_event": "", "goal_days": "7", "schedule": "now",
                **fields}  # fmt: skip

    def create(self, body: str = "Hello {{ traits.first_name }}", **fields: str) -> int:
        """Save a campaign through the form; its id."""
        answer = self.client.post(f"/t/{TENANT}/campaigns/new", data=self.form(body, **fields),
                                  follow_redirects=False)  # fmt: skip
        assert answer.status_code == 303, answer.text
        found = re.fullmatch(rf"/t/{TENANT}/campaigns/(\d+)", answer.headers["location"])
        assert found
        return int(found.group(1))

    def campaign(self, campaign_id: int) -> Campaign:
        with self.session() as session:
            return campaigns.get_campaign(session, campaign_id)

    def run_jobs(self) -> int:
        """Run every due job as a worker would, until none is left; how many ran."""
        return run_due_jobs(TENANT, self.database)


def audited(action: str) -> list[AuditEntry]:
    """The audit entries of one action, oldest first."""
    with control_session() as control:
        return list(
            control.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(col(AuditEntry.id)))
        )


def errors_for(html: str, key: str) -> list[str]:
    """The problems shown next to one input of the campaign form."""
    return [unescape(m) for m in re.findall(rf'data-for="{re.escape(key)}">([^<]*)<', html)]


def figure(html: str, key: str) -> int:
    """A figure of the review page."""
    found = re.search(rf'data-figure="{key}">([0-9,]+)<', html)
    assert found, key
    return int(found.group(1).replace(",", ""))


def tile(html: str, key: str) -> int:
    """A total of the report."""
    found = re.search(rf'data-key="{key}">\s*<dt>[^<]*</dt>\s*<dd><strong>([0-9,]+)</strong>', html)
    assert found, key
    return int(found.group(1).replace(",", ""))


def signed_in(installation: Any, email: str) -> TestClient:
    """Another browser, signed in as ``email``."""
    client = installation.client()
    login(client, email)
    return client


@pytest.fixture
def shop(installation, recording_plugin, provider) -> Iterator[Shop]:
    """The shop on each backend, its marketer signed in."""
    created = installation.tenant(TENANT)
    use_recording_channel(TENANT, provider.url)
    with control_session() as control:
        tenant = get_tenant(control, TENANT)
        set_enabled(control, tenant, get_host(), "push_fcm", True)
        for email, role in (("mia@shop.test", "marketer"), ("ana@shop.test", "analyst")):
            put_member(control, tenant, email=email, role=role, password=PASSWORD, actor="test")
        control.commit()
    events = [
        {"type": "identify", "userId": name, "messageId": f"id-{name}",
         "traits": {**traits, "consent": {CHANNEL: consent}}}
        for name, (traits, consent) in CUSTOMERS.items()
    ]  # fmt: skip
    with Session(tenant_engine(created.tenant.database), expire_on_commit=False) as session:
        assert not accept(session, TENANT, events).rejected
        process_events(TENANT, {})
        people = {name: find_by_identifier(session, "user_id", name).id for name in CUSTOMERS}
        segment = create_segment(session, "Everyone", {"all": []}, "test", {})
        session.commit()
    assert segment.id is not None
    with installation.client() as client:
        login(client, "mia@shop.test")
        yield Shop(installation, client, created.tenant.database, provider, people, segment.id)


# --- the form ------------------------------------------------------------------------------------
def test_the_form_offers_the_channels_fields_and_follows_a_change_of_channel(shop: Shop) -> None:
    page = shop.client.get(f"/t/{TENANT}/campaigns/new")
    assert page.status_code == 200
    assert 'name="lang.0.title"' in page.text and 'name="lang.0.body"' in page.text
    assert '<option value="recording_channel"' in page.text and ">Recording channel</option>" in page.text
    assert f'<option value="{shop.segment_id}">Everyone' in page.text
    assert "(Etc/UTC)" in page.text or "(UTC)" in page.text  # the schedule is in the tenant's zone

    typed = shop.form("Hi {{ traits.first_name }}", channel="push_fcm")
    switched = shop.client.post(f"/t/{TENANT}/campaigns/editor", data=typed, headers=HTMX)
    assert switched.status_code == 200 and 'id="campaign-editor"' in switched.text
    assert 'name="lang.0.image_url"' in switched.text and 'name="lang.0.deep_link"' in switched.text
    assert ">Hi {{ traits.first_name }}</textarea>" in switched.text  # what was typed stays

    added = shop.client.post(f"/t/{TENANT}/campaigns/editor", data={**typed, "action": "add_language"},
                             headers=HTMX)  # fmt: skip
    assert 'name="lang.1"' in added.text and 'name="lang.1.body"' in added.text
    two = {**typed, "lang.1": "fr", "lang.1.body": "Salut", "fallback": "1"}
    removed = shop.client.post(f"/t/{TENANT}/campaigns/editor", data={**two, "action": "remove_language:0"},
                               headers=HTMX)  # fmt: skip
    assert 'name="lang.1"' not in removed.text and 'name="lang.0" value="fr"' in removed.text
    assert 'name="fallback" value="0" checked' in removed.text


def test_the_form_offers_what_the_channel_suggests_for_a_field(shop: Shop) -> None:
    """WhatsApp's approved templates of the last sync are offered for the template name (any name
    may still be typed); a paused one is not."""
    use_whatsapp_with_synced_templates(TENANT)
    typed = {**shop.form(channel="whatsapp"), "lang.0.template_name": "order_"}
    page = shop.client.post(f"/t/{TENANT}/campaigns/editor", data=typed, headers=HTMX)
    assert page.status_code == 200
    assert '<input name="lang.0.template_name" list="suggested-template_name" value="order_"' in page.text
    offered = re.search(r'<datalist id="suggested-template_name">(.*?)</datalist>', page.text)
    assert offered is not None
    assert offered.group(1) == WHATSAPP_OFFERED
    assert 'name="lang.0.body_parameters" rows="3"' in page.text  # a field offered nothing stays as it was


def test_a_syntax_error_is_shown_by_its_language_and_field_with_the_line_and_the_form_keeps_the_text(
    shop: Shop,
) -> None:
    broken = "Hello\n{{ traits.first_name "
    fields = {"lang.1": "fr", "lang.1.body": "Bonjour {{ traits.first_name }}", "lang.1.title": "{% if %}"}
    answer = shop.client.post(f"/t/{TENANT}/campaigns/new", data=shop.form(broken, **fields))
    assert answer.status_code == 422
    (problem,) = errors_for(answer.text, "lang.0.body")
    assert problem.startswith("line 2: ")
    assert errors_for(answer.text, "lang.1.title")[0].startswith("line 1: ")
    assert errors_for(answer.text, "lang.1.body") == []
    assert f">{broken}</textarea>" in unescape(answer.text)
    assert 'name="lang.1" value="fr"' in answer.text and 'name="name" value="Spring sale"' in answer.text
    with shop.session() as session:
        assert session.exec(select(Campaign)).all() == []


def test_an_unknown_variable_a_missing_body_and_a_bad_language_are_named_where_they_are(shop: Shop) -> None:
    fields = {"lang.1": "xx_nowhere", "lang.1.body": "Hi", "lang.2": "de", "lang.2.title": "Only a title"}
    answer = shop.client.post(f"/t/{TENANT}/campaigns/new", data=shop.form("Hi {{ first_name }}", **fields))
    assert answer.status_code == 422
    assert "unknown variable(s) first_name" in errors_for(answer.text, "lang.0.body")[0]
    assert "not a language code" in errors_for(answer.text, "lang.1")[0]
    assert errors_for(answer.text, "lang.2.body") == ["Recording channel needs this field"]


def test_form_problems_of_the_campaign_itself_are_shown_by_their_inputs(shop: Shop) -> None:
    past = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    wrong = {"name": " ", "segment_id": "", "goal_days": "400", "schedule": "later", "send_date": past,
             "send_time": "09:00"}  # fmt: skip
    answer = shop.client.post(f"/t/{TENANT}/campaigns/new", data=shop.form(**wrong))
    assert answer.status_code == 422
    assert errors_for(answer.text, "name") and errors_for(answer.text, "segment_id")
    assert errors_for(answer.text, "goal_days") == ["The goal's days are a whole number from 1 to 90."]
    assert "has passed" in errors_for(answer.text, "schedule")[0]


def test_saving_and_editing_a_campaign_is_audited_and_listed(shop: Shop) -> None:
    campaign_id = shop.create(goal_event="Order Completed", goal_days="5")
    saved = shop.campaign(campaign_id)
    assert saved.status == CampaignStatus.draft and saved.created_by == "mia@shop.test"
    assert saved.content == {"variants": {"en": {"title": "News", "body": "Hello {{ traits.first_name }}"}},
                             "fallback": "en"}  # fmt: skip
    assert (saved.goal_event, saved.goal_days, saved.marketing) == ("Order Completed", 5, True)

    form = shop.client.get(f"/t/{TENANT}/campaigns/{campaign_id}/edit")
    assert 'name="goal_event" value="Order Completed"' in form.text and ">News</textarea>" in form.text
    service_message = {k: v for k, v in shop.form(name="Spring sale, take 2").items() if k != "marketing"}
    edited = shop.client.post(f"/t/{TENANT}/campaigns/{campaign_id}/edit", data=service_message,
                              follow_redirects=False)  # fmt: skip
    assert edited.status_code == 303
    changed = shop.campaign(campaign_id)
    assert (changed.name, changed.marketing) == ("Spring sale, take 2", False)
    assert [e.target for e in audited("campaign.create")] == [f"campaign {campaign_id}"]
    assert [e.detail["name"] for e in audited("campaign.update")] == ["Spring sale, take 2"]

    listing = shop.client.get(f"/t/{TENANT}/campaigns")
    row = re.search(rf'<tr data-campaign="{campaign_id}">(.*?)</tr>', listing.text, re.S)
    assert row and "Spring sale, take 2" in row.group(1) and "Recording channel" in row.group(1)
    assert "Everyone" in row.group(1) and ">draft<" in row.group(1)


def test_a_name_already_taken_is_refused_in_the_form(shop: Shop) -> None:
    shop.create()
    again = shop.client.post(f"/t/{TENANT}/campaigns/new", data=shop.form())
    assert again.status_code == 422 and "already named &#39;Spring sale&#39;" in again.text


# --- preview and test send -------------------------------------------------------------------------
def test_the_preview_shows_the_language_the_fields_and_the_channels_rendering(shop: Shop) -> None:
    campaign_id = shop.create(**{"lang.1": "fr", "lang.1.body": "Bonjour {{ traits.first_name }} !"})
    base = f"/t/{TENANT}/campaigns/{campaign_id}"
    found = shop.client.get(f"{base}/profiles", params={"q": "ANN@example.com"}, headers=HTMX)
    assert found.status_code == 200 and f"profile_id={shop.people['ann']}" in found.text
    by_name = shop.client.get(f"{base}/profiles", params={"q": "example.com"}, headers=HTMX)
    assert all(f"profile_id={shop.people[n]}" in by_name.text for n in ("ann", "bob", "cid", "dee"))

    french = shop.client.get(f"{base}/preview", params={"profile_id": shop.people["ann"]}, headers=HTMX)
    assert french.status_code == 200
    assert '<strong id="preview-language">fr</strong>' in french.text
    assert '<pre data-field="body">Bonjour Ann !</pre>' in french.text
    assert "recording-body" in french.text and 'sandbox=""' in french.text  # the channel's HTML, isolated
    english = shop.client.get(f"{base}/preview", params={"profile_id": shop.people["bob"]}, headers=HTMX)
    assert '<strong id="preview-language">en</strong>' in english.text
    assert '<pre data-field="body">Hello Bob</pre>' in english.text and "Send a test" in english.text


def test_a_preview_for_a_profile_without_a_value_names_the_variable(shop: Shop) -> None:
    campaign_id = shop.create()
    answer = shop.client.get(f"/t/{TENANT}/campaigns/{campaign_id}/preview",
                             params={"profile_id": shop.people["cid"]}, headers=HTMX)  # fmt: skip
    assert answer.status_code == 422
    assert "no value for <code>traits.first_name</code>" in answer.text
    unknown = shop.client.get(f"/t/{TENANT}/campaigns/{campaign_id}/preview", params={"profile_id": "nobody"})
    assert unknown.status_code == 422 and "No profile" in unknown.text


def test_a_test_send_goes_at_once_is_audited_and_its_state_follows(shop: Shop) -> None:
    campaign_id = shop.create()
    base = f"/t/{TENANT}/campaigns/{campaign_id}"
    htmx = {**HTMX, "X-CSRF-Token": shop.csrf}  # what <body hx-headers> adds to every HTMX request
    answer = shop.client.post(f"{base}/test-send", data={"profile_id": shop.people["bob"]}, headers=htmx)
    assert answer.status_code == 200 and 'data-state="queued"' in answer.text and "every 2s" in answer.text
    delivery_id = int(re.search(r"#(\d+)</strong>", answer.text).group(1))  # type: ignore[union-attr]
    shop.run_jobs()
    polled = shop.client.get(f"{base}/deliveries/{delivery_id}", headers=HTMX)
    assert 'data-state="sent"' in polled.text and "every 2s" not in polled.text
    assert [(m.to, m.body) for m in shop.provider.messages] == [("bob@example.com", "Hello Bob")]
    assert audited("campaign.test_send")[0].detail["profile_id"] == shop.people["bob"]
    refused = shop.client.post(f"{base}/test-send", data={"profile_id": shop.people["eve"]}, headers=htmx)
    assert refused.status_code == 422 and "has no email" in refused.text


# --- review, launch, report ------------------------------------------------------------------------
def test_the_review_shows_the_figures_of_the_confirmation_and_who_lacks_a_value(shop: Shop) -> None:
    campaign_id = shop.create()
    page = shop.client.get(f"/t/{TENANT}/campaigns/{campaign_id}/review")
    assert page.status_code == 200
    with control_session() as control:
        tenant = get_tenant(control, TENANT)
        scope = tenant_scope(control, tenant)
    with shop.session() as session:
        summary = campaigns.confirmation(session, tenant, scope, campaigns.get_campaign(session, campaign_id))
    assert (summary.targeted, summary.reach, summary.to_send, summary.deferred) == (5, 2, 2, 0)
    for key in ("targeted", "reach", "to_send", "deferred"):
        assert figure(page.text, key) == getattr(summary, key), key
    assert figure(page.text, "suppressed") == sum(summary.suppressed.values()) == 3
    for reason, number in summary.suppressed.items():
        assert re.search(rf'data-reason="{reason}">.*?<td class="num">{number}</td>', page.text, re.S)
    missing = re.search(r'data-variable="traits.first_name">(.*?)</ul>', page.text, re.S)
    assert missing and f'href="/t/{TENANT}/profiles/{shop.people["cid"]}"' in missing.group(1)
    assert "Launch without the 1 profile missing values" in page.text


def test_a_launch_with_missing_values_needs_the_box_ticked_then_sends_and_reports_the_rows(
    shop: Shop,
) -> None:
    campaign_id = shop.create()
    base = f"/t/{TENANT}/campaigns/{campaign_id}"
    refused = shop.client.post(f"{base}/launch", data={"csrf_token": shop.csrf})
    assert refused.status_code == 422 and 'id="launch-error"' in refused.text
    assert shop.campaign(campaign_id).status == CampaignStatus.draft and audited("campaign.launch") == []

    launched = shop.client.post(f"{base}/launch", data={"csrf_token": shop.csrf, "skip_missing": "on"},
                                follow_redirects=False)  # fmt: skip
    assert launched.status_code == 303 and launched.headers["location"] == base
    assert shop.campaign(campaign_id).status == CampaignStatus.launching
    assert audited("campaign.launch")[0].detail["skip_missing"] is True
    launching = shop.client.get(base)
    assert 'hx-trigger="every 3s"' in launching.text  # the report refreshes while it goes

    shop.run_jobs()
    page = shop.client.get(base)
    assert page.status_code == 200 and shop.campaign(campaign_id).status == CampaignStatus.completed
    assert 'hx-trigger="every 3s"' not in page.text
    with shop.session() as session:
        rows = session.exec(select(Delivery).where(Delivery.campaign_id == campaign_id)).all()
    assert len(rows) == 5 and sorted(m.to for m in shop.provider.messages) == [
        "ann@example.com",
        "bob@example.com",
    ]
    assert tile(page.text, "targeted") == len(rows)
    assert tile(page.text, "sent") == sum(1 for r in rows if r.sent_at) == 2
    assert tile(page.text, "pending") == sum(1 for r in rows if r.state == DeliveryState.queued) == 0
    assert tile(page.text, "suppressed") == sum(1 for r in rows if r.state == DeliveryState.suppressed) == 3
    for reason in ("missing_value", "no_address", "no_consent"):
        assert re.search(rf'data-reason="{reason}">.*?<td class="num">1</td>', page.text, re.S), reason
    assert "bar-sent" in page.text and "Per day" in page.text
    listing = shop.client.get(f"/t/{TENANT}/campaigns")
    assert re.search(rf'data-campaign="{campaign_id}">.*?<td class="num">2 / 5</td>', listing.text, re.S)


def test_the_report_counts_what_happened_after_sending_and_exports_as_csv(shop: Shop) -> None:
    campaign_id = shop.create(body="Hi {{ traits.first_name | default('there') }}")
    shop.client.post(f"/t/{TENANT}/campaigns/{campaign_id}/launch", data={"csrf_token": shop.csrf})
    shop.run_jobs()
    now = utcnow()
    with shop.session() as session:
        # What providers and customers reported later: Ann's message delivered and opened, Bob's bounced.
        of = sa.update(DELIVERY).where(DELIVERY.c.campaign_id == campaign_id)
        session.connection().execute(
            of.where(DELIVERY.c.profile_id == shop.people["ann"]).values(delivered_at=now, opened_at=now)
        )
        session.connection().execute(
            of.where(DELIVERY.c.profile_id == shop.people["bob"]).values(
                state=DeliveryState.failed, reason="bounced", failed_at=now
            )
        )
        session.commit()
        rows = session.exec(select(Delivery).where(Delivery.campaign_id == campaign_id)).all()
    page = shop.client.get(f"/t/{TENANT}/campaigns/{campaign_id}/report", headers=HTMX)
    assert tile(page.text, "sent") == sum(1 for r in rows if r.sent_at) == 3
    assert tile(page.text, "delivered") == tile(page.text, "opened") == 1
    assert tile(page.text, "failed") == sum(1 for r in rows if r.state == DeliveryState.failed) == 1
    assert re.search(r'data-key="opened">.*?33.3%', page.text, re.S)
    assert re.search(r'data-reason="bounced">.*?<td class="num">1</td>', page.text, re.S)

    exported = shop.client.get(f"/t/{TENANT}/campaigns/{campaign_id}/report.csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(exported.text)))
    total = table[-1]
    assert total["day"] == "total"
    assert [total[key] for key in ("sent", "delivered", "opened", "failed")] == ["3", "1", "1", "1"]
    assert table[0]["day"] == now.date().isoformat()
    assert audited("campaign.export")[0].target == f"campaign {campaign_id}"


def test_a_scheduled_campaign_says_when_it_goes_and_can_be_cancelled(shop: Shop) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    campaign_id = shop.create(schedule="later", send_date=tomorrow, send_time="09:30")
    base = f"/t/{TENANT}/campaigns/{campaign_id}"
    review = shop.client.get(f"{base}/review")
    assert f"Schedule for {tomorrow} 09:30" in review.text
    shop.client.post(f"{base}/launch", data={"csrf_token": shop.csrf, "skip_missing": "on"})
    assert shop.campaign(campaign_id).status == CampaignStatus.scheduled
    assert f"Scheduled: goes {tomorrow} 09:30" in shop.client.get(base).text
    shop.run_jobs()  # nothing of it is due before its time
    assert shop.campaign(campaign_id).status == CampaignStatus.scheduled and shop.provider.messages == []
    cancelled = shop.client.post(f"{base}/cancel", data={"csrf_token": shop.csrf}, follow_redirects=False)
    assert cancelled.status_code == 303 and shop.campaign(campaign_id).status == CampaignStatus.cancelled
    assert audited("campaign.cancel")[0].detail["was"] == "scheduled"


def test_an_analyst_sees_campaigns_but_cannot_change_test_send_or_launch_them(shop: Shop) -> None:
    campaign_id = shop.create()
    base = f"/t/{TENANT}/campaigns/{campaign_id}"
    with signed_in(shop.installation, "ana@shop.test") as analyst:
        token = csrf_of(analyst, f"/t/{TENANT}/campaigns")
        assert analyst.get(base).status_code == 200 and analyst.get(f"{base}/review").status_code == 200
        assert "Launch now" not in analyst.get(f"{base}/review").text
        preview = analyst.get(f"{base}/preview", params={"profile_id": shop.people["bob"]})
        assert preview.status_code == 200 and "Send a test" not in preview.text
        assert analyst.get(f"/t/{TENANT}/campaigns/new").status_code == 403
        refused = [(f"{base}/launch", {"skip_missing": "on"}), (f"{base}/cancel", {}),
                   (f"{base}/test-send", {"profile_id": shop.people["bob"]}), (f"{base}/edit", shop.form()),
                   (f"/t/{TENANT}/campaigns/new", shop.form())]  # fmt: skip
        for path, data in refused:
            assert analyst.post(path, data={**data, "csrf_token": token}).status_code == 403, path
    assert shop.campaign(campaign_id).status == CampaignStatus.draft
    assert audited("campaign.launch") == [] and shop.provider.messages == []


def test_another_tenants_campaign_is_not_found(shop: Shop) -> None:
    campaign_id = shop.create()
    shop.installation.tenant("other", email="mia@other.test")
    with signed_in(shop.installation, "mia@other.test") as stranger:
        assert stranger.get(f"/t/{TENANT}/campaigns/{campaign_id}").status_code == 404
        assert stranger.get(f"/t/other/campaigns/{campaign_id}").status_code == 404


# --- the sending policy -------------------------------------------------------------------------------
def test_the_sending_policy_is_saved_from_its_form_and_audited(shop: Shop) -> None:
    with signed_in(shop.installation, f"admin@{TENANT}.test") as admin:
        page = admin.get(f"/t/{TENANT}/settings/sending-policy")
        assert page.status_code == 200 and 'name="cap.recording_channel.messages"' in page.text
        token = csrf_of(admin, f"/t/{TENANT}/settings/sending-policy")
        typed = {"csrf_token": token, "overall.messages": "3", "overall.hours": "24",
                 "cap.recording_channel.messages": "1", "cap.recording_channel.hours": "12",
                 "rate.push_fcm": "2.5", "quiet.start": "21:00", "quiet.end": "08:00", "tenant_rate": "50"}  # fmt: skip
        saved = admin.post(f"/t/{TENANT}/settings/sending-policy", data=typed, follow_redirects=False)
        assert saved.status_code == 303
        assert "Sending policy saved." in admin.get(saved.headers["location"]).text
    with shop.session() as session:
        policy = get_policy(session)
    assert policy == Policy(
        overall_cap=Cap(messages=3, hours=24), channel_caps={"recording_channel": Cap(messages=1, hours=12)},
        quiet_hours=QuietHours(start="21:00", end="08:00"), channel_rates={"push_fcm": 2.5}, tenant_rate=50,
    )  # fmt: skip
    (entry,) = audited("sending_policy.update")
    assert entry.actor == f"admin@{TENANT}.test" and entry.detail["tenant_rate"] == 50
    shown = shop.client.get(f"/t/{TENANT}/settings/sending-policy")  # the marketer reads it
    assert (
        'name="quiet.start" value="21:00"' in shown.text and 'name="rate.push_fcm" value="2.5"' in shown.text
    )


def test_an_invalid_sending_policy_is_refused_by_its_fields_and_nothing_is_saved(shop: Shop) -> None:
    with signed_in(shop.installation, f"admin@{TENANT}.test") as admin:
        token = csrf_of(admin, f"/t/{TENANT}/settings/sending-policy")
        answer = admin.post(f"/t/{TENANT}/settings/sending-policy", data={
            "csrf_token": token, "overall.messages": "3", "cap.push_fcm.messages": "5000",
            "cap.push_fcm.hours": "1", "rate.recording_channel": "fast", "quiet.start": "21:00",
            "tenant_rate": "0"})  # fmt: skip
    assert answer.status_code == 422
    assert errors_for(answer.text, "overall.hours") == ["Give both: N messages per H hours."]
    assert errors_for(answer.text, "rate.recording_channel") == [
        "A number of sends per second, such as 50 or 0.5."
    ]
    assert errors_for(answer.text, "quiet.end") and errors_for(answer.text, "tenant_rate")
    assert 'name="rate.recording_channel" value="fast"' in answer.text  # what was typed stays
    with signed_in(shop.installation, f"admin@{TENANT}.test") as admin:
        token = csrf_of(admin, f"/t/{TENANT}/settings/sending-policy")
        too_many = admin.post(f"/t/{TENANT}/settings/sending-policy", data={
            "csrf_token": token, "cap.push_fcm.messages": "5000", "cap.push_fcm.hours": "1"})  # fmt: skip
    assert too_many.status_code == 422 and errors_for(too_many.text, "cap.push_fcm.messages")
    with shop.session() as session:
        assert get_policy(session) == Policy()
    assert audited("sending_policy.update") == []


def test_a_marketer_reads_the_sending_policy_but_cannot_change_it(shop: Shop) -> None:
    page = shop.client.get(f"/t/{TENANT}/settings/sending-policy")
    assert page.status_code == 200 and "Save sending policy" not in page.text
    answer = shop.client.post(f"/t/{TENANT}/settings/sending-policy",
                              data={"csrf_token": shop.csrf, "tenant_rate": "1"})  # fmt: skip
    assert answer.status_code == 403
    with signed_in(shop.installation, "ana@shop.test") as analyst:
        assert analyst.get(f"/t/{TENANT}/settings/sending-policy").status_code == 403
