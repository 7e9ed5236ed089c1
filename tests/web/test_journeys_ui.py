"""The journey builder, through the real forms (CSRF, roles, HTMX): a marketer builds a journey
step by step, sees it drawn, fixes what the journeys service refuses, activates it and follows the
counts per step; a viewer only looks; a profile's 360 view shows its path.

The builder's form holds the whole definition as JSON plus the side panel's inputs; every button
posts it all. :class:`Browser` posts it as a browser would: every input, select and textarea of
the workspace form as rendered (checkboxes only when checked), with what the test types on top.
Customers come in through the real ingestion and processing, which also feeds event triggers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from core.audit.models import AuditEntry
from core.db.base import utcnow
from core.db.engines import control_session, tenant_engine
from core.ingest.service import accept
from core.journeys import service as journeys
from core.journeys.models import Journey, JourneyStatus
from core.loyalty.offers import OfferIn, coupons_of, create_offer
from core.passes.models import PassTemplate, WalletPass
from core.plugins import get_host
from core.profiles.jobs import process_events
from core.profiles.service import find_by_identifier, get_profile
from core.segments.clock import Clock
from core.segments.service import TenantScope, create_segment, tenant_scope
from core.tenancy.members import put_member
from core.tenancy.plugin_settings import set_enabled
from core.tenancy.tenants import get_tenant
from tests.plugins_host.packages import plugin_packages, recording_plugin
from tests.support import (
    PASSWORD,
    WHATSAPP_OFFERED,
    login,
    run_due_jobs,
    use_recording_channel,
    use_whatsapp_with_synced_templates,
)
from web.journey_builder.flow import layout, problems_by_box
from web.journey_builder.forms import new_step
from web.journey_builder.graph import insert, reachable, remove, removed_with
from web.journey_builder.words import duration_words, split_shares, step_words, trigger_words
from web.segment_builder.options import Options

__all__ = ["plugin_packages", "recording_plugin"]

TENANT = "shop"
CHANNEL = "recording_channel"
HTMX = {"HX-Request": "true"}
# Tags not counted as nesting levels: void elements, and options (never holding inputs).
FLAT_TAGS = {
    "input",
    "option",
    "br",
    "img",
    "hr",
    "meta",
    "link",
    "wbr",
    "source",
    "col",
    "area",
    "embed",
    "track",
}
CUSTOMERS = {"ann": "Ann", "bob": "Bob", "cid": "Cid"}


# --- the browser's side of the form ---------------------------------------------------------------
class _FormValues(HTMLParser):
    """The values a browser submits for the form with id ``form_id`` (or a fragment of one)."""

    def __init__(self, form_id: str | None) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id, self.inside, self.depth = form_id, form_id is None, 0
        self.values: dict[str, str] = {}
        self.disabled_depth: int | None = None
        self.select: str | None = None
        self.first_option: str | None = None
        self.chosen: str | None = None
        self.textarea: str | None = None
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if not self.inside:
            self.inside = tag == "form" and found.get("id") == self.form_id
            return
        if tag == "fieldset" and "disabled" in found and self.disabled_depth is None:
            self.disabled_depth = self.depth
        if tag not in FLAT_TAGS:
            self.depth += 1
        if self.disabled_depth is not None or "disabled" in found:
            return
        name = found.get("name")
        if tag == "input" and name and found.get("type") not in ("submit", "button"):
            if found.get("type") not in ("checkbox", "radio") or "checked" in found:
                self.values[name] = found.get("value", "")
        elif tag == "select" and name:
            self.select, self.first_option, self.chosen = name, None, None
        elif tag == "option" and self.select:
            value = found.get("value")
            if value is not None:
                self.first_option = value if self.first_option is None else self.first_option
                if "selected" in found:
                    self.chosen = value
        elif tag == "textarea" and name:
            self.textarea, self.text = name, ""

    def handle_data(self, data: str) -> None:
        if self.textarea:
            self.text += data

    def handle_endtag(self, tag: str) -> None:
        if not self.inside:
            return
        if tag == "select" and self.select:
            chosen = self.chosen if self.chosen is not None else self.first_option
            if chosen is not None:
                self.values[self.select] = chosen
            self.select = None
        elif tag == "textarea" and self.textarea:
            self.values[self.textarea] = self.text.removeprefix("\n")
            self.textarea = None
        elif tag == "form" and self.form_id:
            self.inside = False
        if tag not in FLAT_TAGS:
            self.depth -= 1
            if self.disabled_depth is not None and self.depth <= self.disabled_depth:
                self.disabled_depth = None


def form_values(html: str, form_id: str | None = "workspace") -> dict[str, str]:
    """What a browser would submit for that form (or, without ``form_id``, for the fragment's inputs)."""
    parser = _FormValues(form_id)
    parser.feed(html)
    return parser.values


def box(html: str, key: str) -> str:
    """The text of one step's box on the flow (``trigger`` for the trigger's)."""
    element = "box-trigger" if key == "trigger" else f"step-{key}"
    found = re.search(rf'<div class="flow-box[^"]*" id="{element}"[^>]*>(.*?)\n  </div>', html, re.S)
    assert found, f"no box {key}"
    return unescape(re.sub(r"<[^>]+>", " ", found.group(1)))


def drawn(html: str) -> list[str]:
    """The steps' keys in the order the flow draws them."""
    return re.findall(r'id="step-([^"]+)" data-step=', html)


def definition_in(html: str) -> dict[str, Any]:
    """The definition the page holds."""
    found = re.search(r'name="definition" value="([^"]*)"', html)
    assert found
    return dict(json.loads(unescape(found.group(1))))


@dataclass
class Browser:
    """A signed-in client on the builder of one journey, posting the workspace form as rendered."""

    client: TestClient
    journey_id: int
    html: str = ""
    status: int = 200

    @property
    def url(self) -> str:
        return f"/t/{TENANT}/journeys/{self.journey_id}"

    def open(self, panel: str = "") -> str:
        """Load the builder page (with ``panel`` open)."""
        answer = self.client.get(self.url + (f"?open={panel}" if panel else ""))
        assert answer.status_code == 200, answer.text
        self.html = answer.text
        return self.html

    def press(self, action: str, **typed: str) -> str:
        """Type into the panel's inputs (``typed``), then press the button ``action``; the new workspace."""
        data = {**form_values(self.html), **typed, "action": action}
        answer = self.client.post(self.url + "/edit", data=data, headers=HTMX)
        self.status, self.html = answer.status_code, answer.text
        return self.html

    def rule(self, action: str, **typed: str) -> None:
        """Press a button of the branch's rule tree: the tree in the page is replaced (HTMX)."""
        data = {**form_values(self.html), **typed, "action": action}
        answer = self.client.post(self.url + "/rule/builder", data=data, headers=HTMX)
        assert answer.status_code == 200, answer.text
        tree = re.search(r'<div id="builder".*?<datalist id="event-names">.*?</div>', answer.text, re.S)
        assert tree
        self.html = re.sub(r'<div id="builder".*?<datalist id="event-names">.*?</div>', lambda _: tree.group(0),
                           self.html, count=1, flags=re.S)  # fmt: skip

    def journey(self, database: str) -> Journey:
        with Session(tenant_engine(database)) as session:
            return journeys.get_journey(session, self.journey_id)


def audited(action: str) -> list[AuditEntry]:
    """The audit entries of one action, oldest first."""
    with control_session() as control:
        query = select(AuditEntry).where(AuditEntry.action == action).order_by(col(AuditEntry.id))
        return list(control.exec(query))


# --- the shop -------------------------------------------------------------------------------------------
@dataclass
class Shop:
    """The tenant, its marketer's client, the customers' profile ids and a segment."""

    installation: Any
    client: TestClient
    database: str
    people: dict[str, str]
    segment_id: int

    def session(self) -> Session:
        return Session(tenant_engine(self.database), expire_on_commit=False)

    def create(self, name: str) -> Browser:
        """Create a journey through the "New journey" form; the builder it opens on."""
        page = self.client.get(f"/t/{TENANT}/journeys/new")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert page.status_code == 200 and csrf
        answer = self.client.post(f"/t/{TENANT}/journeys/new", data={"csrf_token": csrf.group(1), "name": name},
                                  follow_redirects=False)  # fmt: skip
        assert answer.status_code == 303, answer.text
        found = re.fullmatch(rf"/t/{TENANT}/journeys/(\d+)\?open=trigger", answer.headers["location"])
        assert found
        browser = Browser(self.client, int(found.group(1)))
        browser.open("trigger")
        return browser

    def track(self, event: str, *users: str) -> None:
        """Users perform ``event`` (through ingestion and processing, which feeds journeys)."""
        events = [{"type": "track", "userId": user, "event": event, "messageId": f"{event}-{user}-{utcnow()}",
                   "timestamp": utcnow().isoformat()} for user in users]  # fmt: skip
        with self.session() as session:
            assert not accept(session, TENANT, events).rejected
        process_events(TENANT, {})

    def run_jobs(self) -> None:
        """Run every due job as a worker would, until none is left."""
        run_due_jobs(TENANT, self.database)


@pytest.fixture
def shop(installation, recording_plugin, provider) -> Iterator[Shop]:
    """The shop on each backend: three customers with consent, the recording channel, its marketer signed in."""
    created = installation.tenant(TENANT)
    use_recording_channel(TENANT, provider.url)
    with control_session() as control:
        tenant = get_tenant(control, TENANT)
        for email, role in (("mia@shop.test", "marketer"), ("ana@shop.test", "analyst")):
            put_member(control, tenant, email=email, role=role, password=PASSWORD, actor="test")
        control.commit()
    events = [{"type": "identify", "userId": user, "messageId": f"id-{user}",
               "traits": {"email": f"{user}@example.com", "first_name": name, "consent": {CHANNEL: True}}}
              for user, name in CUSTOMERS.items()]  # fmt: skip
    with Session(tenant_engine(created.tenant.database), expire_on_commit=False) as session:
        assert not accept(session, TENANT, events).rejected
        process_events(TENANT, {})
        people = {user: find_by_identifier(session, "user_id", user).id for user in CUSTOMERS}
        segment = create_segment(session, "Newcomers", {"all": []}, "test", {})
        session.commit()
    assert segment.id is not None
    with installation.client() as client:
        login(client, "mia@shop.test")
        yield Shop(installation, client, created.tenant.database, people, segment.id)


# --- the builder, without a server ------------------------------------------------------------------
OPTIONS = Options(TenantScope(Clock.at(), {}, {}, frozenset()), names={3: "VIP"})


def test_steps_are_inserted_on_connectors_and_deleted_reconnecting_what_followed() -> None:
    definition: dict[str, Any] = {
        "trigger": {"type": "api"},
        "start": "exit",
        "steps": {"exit": {"type": "exit"}},
    }
    definition, send = insert(definition, "start", "start", new_step("send", {}) or {})
    definition, wait = insert(definition, send, "next", new_step("wait", {}) or {})
    definition, branch = insert(definition, wait, "next", new_step("branch", {}) or {})
    definition, vip = insert(definition, branch, "no", new_step("update_trait", {}) or {})
    assert (send, wait, branch, vip) == ("s1", "s2", "s3", "s4")
    assert definition["start"] == "s1" and definition["steps"]["s1"]["next"] == "s2"
    assert definition["steps"]["s3"]["yes"] == "exit" and definition["steps"]["s3"]["no"] == "s4"
    assert reachable(definition) == ["s1", "s2", "s3", "exit", "s4"]

    without_wait = remove(definition, "s2")  # one next: what led to it leads there
    assert without_wait["steps"]["s1"]["next"] == "s3" and "s2" not in without_wait["steps"]
    assert removed_with(definition, "s3") == 2  # the exit and the trait step only hang from it
    without_branch = remove(definition, "s3")  # two ways out: the journey ends there
    assert without_branch["steps"]["s2"]["next"] is None and set(without_branch["steps"]) == {"s1", "s2"}
    assert remove(definition, "s1")["start"] == "s2"


def test_the_flow_draws_lanes_side_by_side_and_each_step_once() -> None:
    definition = {
        "trigger": {"type": "segment_entered", "segment_id": 3}, "start": "a",
        "steps": {
            "a": {"type": "wait_for_event", "event": "Order Completed", "timeout_seconds": 259_200,
                  "on_event": "b", "on_timeout": "c"},
            "b": {"type": "wait", "seconds": 7_200, "next": "a"},  # a loop back
            "c": {"type": "split", "branches": [{"weight": 45, "next": "b"}, {"weight": 45, "next": None}],
                  "holdout": 10},
            "lost": {"type": "exit"},
        },
    }  # fmt: skip
    flow = layout(definition, OPTIONS)
    first = flow.boxes[0]
    assert first.key == "a" and [lane.label for lane in first.lanes] == ["“Order Completed” happened",
                                                                         "Not within 3 days"]  # fmt: skip
    loop = first.lanes[0].boxes
    assert [b.kind for b in loop] == ["step", "jump"] and loop[1].key == "a"
    split = first.lanes[1].boxes[0]
    assert split.words == "Split 45% / 45%, hold-out 10%" and split.holdout == 10
    assert [b.kind for b in split.lanes[0].boxes] == ["jump"] and [b.kind for b in split.lanes[1].boxes] == [
        "end"
    ]
    assert flow.order == ["a", "b", "c"] and [[b.key for b in chain] for chain in flow.unlinked] == [["lost"]]
    assert trigger_words(definition["trigger"], OPTIONS) == "When a profile enters segment “VIP”"
    assert split_shares({"branches": [{"weight": 1}, {"weight": 3}]}) == ([25.0, 75.0], 0.0)
    assert duration_words(86_400) == "1 day" and duration_words(5_400) == "90 minutes"
    assert step_words({"type": "branch", "rule": {"any": [{"type": "segment", "segment": 3},
                                                        {"type": "trait", "key": "vip", "op": "=", "value": True}]}},
                      OPTIONS) == "If is in segment “VIP” or vip = true"  # fmt: skip
    assert step_words({"type": "update_pass", "template_id": 7}, OPTIONS) == "Update wallet pass (template 7)"
    assert step_words({"type": "notify_on_pass", "template_id": None, "message": "Your\n reward is ready"},
                      OPTIONS) == "Notify on wallet pass: “Your reward is ready”"  # fmt: skip


def test_problems_go_to_the_box_they_concern() -> None:
    found = problems_by_box([
        ("steps.s1.content.variants.en.body", "line 1: unexpected end of template"), ("trigger.event", "required"),
        ("start", "there is no step 'x'"), ("goal.within_days", "too long"), ("name", "give the journey a name"),
    ])  # fmt: skip
    assert found == {"s1": ["en body: line 1: unexpected end of template"], "trigger": ["event: required",
                     "there is no step 'x'"], "settings": ["within days: too long"],
                     "": ["name: give the journey a name"]}  # fmt: skip


# --- the builder, through the server ------------------------------------------------------------------
def test_a_marketer_builds_a_journey_activates_it_and_follows_the_counts(shop: Shop) -> None:
    listing = shop.client.get(f"/t/{TENANT}/journeys")
    assert listing.status_code == 200 and "No journey yet" in listing.text

    b = shop.create("Welcome series")
    assert audited("journey.create")[-1].detail == {"name": "Welcome series"}
    assert 'name="trigger_type"' in b.html and drawn(b.html) == [
        "exit"
    ]  # a new journey: entered by API, exits

    # The trigger: an event.
    b.press("refresh", trigger_type="event")
    assert 'name="event"' in b.html and b.status == 422  # no event name yet: not saved, said so
    assert "Not saved yet" in b.html and "event:" in box(b.html, "trigger")
    b.press("save", event="Signed Up")
    assert b.status == 200 and "Saved." in b.html
    assert "When “Signed Up” is tracked" in box(b.html, "trigger")

    # send → wait → wait for event → branch → exit, each added on a connector and filled in its panel.
    b.press("add|start|start|send")
    assert 'name="text.en.title"' in b.html and 'name="text.en.body"' in b.html
    assert '<option value="recording_channel" selected>Recording channel</option>' in b.html
    b.press(
        "save", label="Welcome", **{"text.en.title": "Welcome", "text.en.body": "Hi {{ traits.first_name }}"}
    )
    assert b.status == 200 and "Send on Recording channel: “Welcome”" in box(b.html, "s1")
    b.press("add|s1|next|wait")
    b.press("save", amount="2", unit="days")
    assert "Wait 2 days" in box(b.html, "s2")
    b.press("add|s2|next|wait_for_event")
    b.press("save", event="Order Completed", amount="3", unit="days")
    assert "Wait up to 3 days for “Order Completed”" in box(b.html, "s3")
    b.press("add|s3|on_event|branch")
    assert 'id="builder"' in b.html and 'id="preview"' in b.html  # the audience builder's rule tree
    b.rule("add:r:trait")
    typed = {"r.0:key": "first_name", "r.0:op": "=", "r.0:value": "Ann"}
    preview = shop.client.post(f"{b.url}/rule/preview", data={**form_values(b.html), **typed}, headers=HTMX)
    assert preview.status_code == 200 and 'id="live-count">1<' in preview.text  # Ann would go down "yes" now
    b.press("save", **typed, label="Is it Ann?")
    assert b.status == 200 and "If first_name = Ann" in box(b.html, "s4")
    b.press("add|s3|on_timeout|exit")

    assert drawn(b.html) == ["s1", "s2", "s3", "s4", "exit", "s5"]
    assert "“Order Completed” happened" in b.html and "Not within 3 days" in b.html
    assert ">Yes<" in b.html and ">No<" in b.html
    saved = b.journey(shop.database).definition
    assert saved["start"] == "s1" and saved["steps"]["s3"] == {
        "type": "wait_for_event", "event": "Order Completed", "timeout_seconds": 259_200, "on_event": "s4",
        "on_timeout": "s5"}  # fmt: skip
    assert saved["steps"]["s4"]["rule"] == {
        "all": [{"type": "trait", "key": "first_name", "op": "=", "value": "Ann"}]
    }
    assert saved["steps"]["s4"]["yes"] == "exit" and saved["steps"]["s4"]["no"] is None

    # A broken template: refused by the service, shown on the send step (and only there), kept in the page.
    b.press("open|s1")
    b.press("save", **{"text.en.body": "Hi {{ traits.first_name "})
    assert b.status == 422 and "Not saved yet" in b.html
    assert "en body: line 1:" in box(b.html, "s1")
    assert all("field-error" not in box(b.html, key) for key in ("s2", "s3", "s4"))
    assert (
        definition_in(b.html)["steps"]["s1"]["content"]["variants"]["en"]["body"]
        == "Hi {{ traits.first_name "
    )
    assert b.journey(shop.database).definition == saved
    b.press("add|s2|next|update_trait")  # other edits carry the unsaved text along
    assert b.status == 422 and "s6" in definition_in(b.html)["steps"]
    b.press("delete|s6")
    b.press("open|s1")
    b.press("save", **{"text.en.body": "Hi {{ traits.first_name }}!"})
    assert b.status == 200 and b.journey(shop.database).definition["steps"]["s1"]["content"]["variants"]["en"] == {
        "title": "Welcome", "body": "Hi {{ traits.first_name }}!"}  # fmt: skip
    assert len(audited("journey.update")) >= 8

    # Activate; customers sign up; the flow shows how many entered each step and are there now.
    csrf = form_values(b.html)["csrf_token"]
    answer = shop.client.post(f"{b.url}/activate", data={"csrf_token": csrf}, follow_redirects=False)
    assert answer.status_code == 303 and b.journey(shop.database).status == JourneyStatus.active
    assert audited("journey.activate")[-1].detail == {"name": "Welcome series"}
    shop.track("Signed Up", "ann", "bob", "cid")
    shop.run_jobs()  # the send step's messages go out
    page = b.open()
    assert 'name="action" value="add|' not in page  # an active journey is not edited
    assert "3 entered" in box(page, "s1") and "0 here now" in box(page, "s1") and "sent 3" in box(page, "s1")
    assert "3 entered" in box(page, "s2") and "3 here now" in box(page, "s2")
    assert "0 entered" in box(page, "s3")
    assert re.search(r'data-key="entered"><dt>Entered</dt><dd>3</dd>', page)
    report = shop.client.get(f"{b.url}/report")
    assert report.status_code == 200 and 'id="report-s1"' in report.text
    assert re.search(r'data-key="sent">\s*<dt>Sent</dt>\s*<dd><strong>3</strong>', report.text)
    exported = shop.client.get(f"{b.url}/report.csv")
    assert 'id="report-csv"' in report.text and exported.status_code == 200
    assert "s1,total,3," in exported.text and audited("journey.export")

    listed = shop.client.get(f"/t/{TENANT}/journeys").text
    row = re.search(rf'<tr id="journey-{b.journey_id}">(.*?)</tr>', listed, re.S)
    assert row and "When “Signed Up” is tracked" in row.group(1)
    assert [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', row.group(1))] == [3, 3, 0]

    # An active journey refuses edits until paused.
    refused = shop.client.post(f"{b.url}/edit", data={**form_values(page), "action": "save"}, headers=HTMX)
    assert refused.status_code == 409
    answer = shop.client.post(f"{b.url}/pause", data={"csrf_token": csrf}, follow_redirects=False)
    assert answer.status_code == 303 and audited("journey.pause")
    assert 'value="add|s1|next|send"' in b.open()
    answer = shop.client.post(f"{b.url}/archive", data={"csrf_token": csrf}, follow_redirects=False)
    assert answer.status_code == 303 and audited("journey.archive")
    assert "Journey “Welcome series” archived." in shop.client.get(answer.headers["location"]).text
    archived = b.open()
    assert "This journey is archived" in archived and "3 entered" in box(archived, "s1")


def test_a_send_step_offers_what_the_channel_suggests_for_a_field(shop: Shop) -> None:
    """WhatsApp's approved templates of the last sync are offered for the template name; a paused one is not."""
    use_whatsapp_with_synced_templates(TENANT)
    b = shop.create("Orders")
    b.press("add|start|start|send")
    b.press("refresh", channel="whatsapp")
    assert '<input name="text.en.template_name" list="suggested-template_name" value=""' in b.html
    offered = re.search(r'<datalist id="suggested-template_name">(.*?)</datalist>', b.html)
    assert offered is not None and offered.group(1) == WHATSAPP_OFFERED
    assert '<textarea name="text.en.body_parameters"' in b.html  # a field offered nothing stays as it was


def test_a_viewer_sees_the_flow_but_cannot_change_it(shop: Shop) -> None:
    b = shop.create("Birthday")
    b.press("refresh", trigger_type="date")
    b.press("save", trait="birthday", days_before="3", at="08:30")
    assert "3 days before the date in trait “birthday”, each year at 08:30" in box(b.html, "trigger")
    b.press("save", at="8h")  # not a time of day: the last one is kept, and said
    assert "8h is not a time of day" in box(b.html, "trigger")

    viewer = shop.installation.client()
    login(viewer, "ana@shop.test")
    page = viewer.get(f"/t/{TENANT}/journeys/{b.journey_id}?open=trigger")
    assert page.status_code == 200 and "3 days before the date" in page.text
    assert 'value="add|' not in page.text and "can look at journeys but not change them" in page.text
    assert re.search(r'<fieldset class="panel-fields" disabled>', page.text)
    assert f'href="/t/{TENANT}/journeys/{b.journey_id}?open=exit"' in page.text  # boxes open as links
    values = form_values(page.text)
    assert "trigger_type" not in values  # disabled inputs are not sent
    csrf = values["csrf_token"]
    for path in ("edit", "activate", "archive"):
        answer = viewer.post(
            f"/t/{TENANT}/journeys/{b.journey_id}/{path}", data={"csrf_token": csrf, "action": "save"}
        )
        assert answer.status_code == 403, path
    assert viewer.get(f"/t/{TENANT}/journeys/new").status_code == 403
    assert b.journey(shop.database).status == JourneyStatus.draft


def test_segment_triggers_splits_traits_and_the_goal_are_edited_without_code(shop: Shop) -> None:
    b = shop.create("Newcomers")
    b.press("refresh", trigger_type="segment_entered")
    assert b.status == 200 and "When a profile enters segment “Newcomers”" in box(b.html, "trigger")

    b.press("add|start|start|split")
    b.press("path-add")
    b.press("save", **{"weight.0": "30", "weight.1": "30", "weight.2": "30", "holdout": "10"})
    assert "Split 30% / 30% / 30%, hold-out 10%" in box(b.html, "s1") and "Hold-out · 10.0%" in b.html
    assert "Path C · 30%" in b.html
    b.press("add|s1|branch:1|update_trait")
    b.press("refresh", trait="vip", value_type="boolean")
    b.press("save", value="true")
    assert "Set trait “vip” to true" in box(b.html, "s2")
    b.press("open|s1")
    b.press("path-remove|1")  # the path and the step only on it go
    steps = b.journey(shop.database).definition["steps"]
    assert len(steps["s1"]["branches"]) == 2 and "s2" not in steps

    b.press("open|settings")
    b.press(
        "save", goal_event="Order Completed", goal_days="14", reentry_mode="after_exit", cooldown_hours="24"
    )
    saved = b.journey(shop.database).definition
    assert saved["goal"] == {"event": "Order Completed", "within_days": 14}
    assert saved["reentry"] == {"mode": "after_exit", "cooldown_hours": 24}
    assert "Goal: “Order Completed” within 14 days" in b.html


def test_the_profile_360_shows_its_path_through_a_journey(shop: Shop) -> None:
    b = shop.create("VIP upgrade")  # entered through the API, as new journeys are
    b.press("add|start|start|update_trait")
    b.press("refresh", trait="vip", value_type="boolean", label="Make VIP")
    b.press("save", value="true")
    assert b.status == 200
    with shop.session() as session:
        journey = journeys.get_journey(session, b.journey_id)
        with control_session() as control:
            tenant = get_tenant(control, TENANT)
            scope = tenant_scope(control, tenant)
        journeys.activate(session, tenant, scope, journey, "test")
        session.commit()
        assert journeys.enter(session, tenant, scope, journey, shop.people["bob"]) is not None
        session.commit()
        assert get_profile(session, shop.people["bob"]).traits["vip"] is True

    page = shop.client.get(f"/t/{TENANT}/profiles/{shop.people['bob']}")
    assert page.status_code == 200
    card = re.search(r'<section class="card" id="journeys">(.*?)</section>', page.text, re.S)
    assert card
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", card.group(1))).split())
    assert "VIP upgrade" in text and "exited" in text and "entered" in text and "ended" in text
    assert re.search(r"Make VIP — trait set \d{4}-\d\d-\d\d \d\d:\d\d Exit — exited", text), text
    assert "In no journey yet" in shop.client.get(f"/t/{TENANT}/profiles/{shop.people['ann']}").text

    flow = b.open()
    assert "1 entered" in box(flow, "s1") and "1 entered" in box(flow, "exit")


def test_an_offer_step_names_an_existing_offer_and_shows_on_the_profiles_path(shop: Shop) -> None:
    with shop.session() as session:
        offer = create_offer(session, OfferIn(name="Welcome gift", value="a tote bag"), "test")
        session.commit()
    b = shop.create("Welcome gift")
    b.press("add|start|start|assign_offer")
    assert 'name="offer_id"' in b.html and b.status == 422  # no offer chosen yet: not saved, said so
    assert f'<option value="{offer.id}">Welcome gift</option>' in b.html  # offers are chosen by name
    assert "Assign an offer (none chosen)" in box(b.html, "s1")
    b.press("save", offer_id="999")
    assert b.status == 422 and "there is no offer 999" in box(b.html, "s1")
    b.press("save", offer_id="a few")
    assert "a few is not a whole number" in box(b.html, "s1")
    b.press("save", offer_id=str(offer.id), label="Gift")
    assert b.status == 200 and "Assign the offer Welcome gift" in box(b.html, "s1")
    assert b.journey(shop.database).definition["steps"]["s1"] == {
        "type": "assign_offer", "offer_id": offer.id, "next": "exit", "label": "Gift"}  # fmt: skip

    with shop.session() as session:
        journey = journeys.get_journey(session, b.journey_id)
        with control_session() as control:
            tenant = get_tenant(control, TENANT)
            scope = tenant_scope(control, tenant)
        journeys.activate(session, tenant, scope, journey, "test")
        assert journeys.enter(session, tenant, scope, journey, shop.people["bob"]) is not None
        session.commit()
        ((coupon, _),) = coupons_of(session, shop.people["bob"])
    assert coupon.assigned_by == f"journey:{b.journey_id}"
    page = shop.client.get(f"/t/{TENANT}/profiles/{shop.people['bob']}")
    card = re.search(r'<section class="card" id="journeys">(.*?)</section>', page.text, re.S)
    assert card and "Gift — offer assigned" in " ".join(
        unescape(re.sub(r"<[^>]+>", " ", card.group(1))).split()
    )


def test_wallet_pass_steps_choose_a_template_say_their_message_and_show_on_the_profiles_path(
    shop: Shop,
) -> None:
    with shop.session() as session:
        card = PassTemplate(key="card", name="Loyalty card", channel="wallet_apple",
                            design={"organization_name": "Shop", "description": "Card"})  # fmt: skip
        session.add(card)
        session.flush()
        session.add(WalletPass(serial="serial-bob", channel="wallet_apple", template_id=card.id,
                               profile_id=shop.people["bob"], authentication_token="t" * 32))  # fmt: skip
        session.commit()
    b = shop.create("Card news")
    b.press("add|start|start|notify_on_pass")
    assert 'name="message"' in b.html and b.status == 422  # no message yet: not saved, said so
    assert "Notify on wallet pass (no message yet)" in box(b.html, "s1")
    assert "write the message the pass shows" in box(b.html, "s1")
    assert '<option value="" selected>All pass templates</option>' in b.html  # templates are chosen by name
    assert f'<option value="{card.id}">Loyalty card</option>' in b.html
    b.press("save", message="Hi {{ traits.first_name }")
    assert b.status == 422 and "line 1: unexpected '}'" in box(b.html, "s1")
    b.press("save", message="Hi {{ traits.first_name }}, your card has news", template_id=str(card.id))
    assert b.status == 200
    assert "Notify on wallet pass “Loyalty card”: “Hi {{ traits.first_name }}, your card has news”" in box(
        b.html, "s1"
    )
    b.press("add|s1|next|update_pass")
    assert b.status == 200 and "Update wallet pass" in box(b.html, "s2")  # every template, to start with
    steps = b.journey(shop.database).definition["steps"]
    assert (steps["s1"], steps["s2"]) == (
        {"type": "notify_on_pass", "template_id": card.id, "message": "Hi {{ traits.first_name }}, your card has news",
         "next": "s2"},
        {"type": "update_pass", "template_id": None, "next": "exit"},
    )  # fmt: skip

    with shop.session() as session:
        journey = journeys.get_journey(session, b.journey_id)
        with control_session() as control:
            tenant = get_tenant(control, TENANT)
            scope = tenant_scope(control, tenant)
        journeys.activate(session, tenant, scope, journey, "test")
        for user in ("bob", "cid"):
            assert journeys.enter(session, tenant, scope, journey, shop.people[user]) is not None
        session.commit()
        (held,) = session.exec(select(WalletPass)).all()
    assert held.notice == "Hi Bob, your card has news"
    for user, outcomes in (("bob", ("message put on the wallet pass", "wallet pass updated")),
                           ("cid", ("skipped (no pass)", "skipped (no pass)"))):  # fmt: skip
        page = shop.client.get(f"/t/{TENANT}/profiles/{shop.people[user]}")
        card_text = re.search(r'<section class="card" id="journeys">(.*?)</section>', page.text, re.S)
        assert card_text
        text = " ".join(unescape(re.sub(r"<[^>]+>", " ", card_text.group(1))).split())
        assert (
            f"Notify on wallet pass — {outcomes[0]}" in text and f"Update wallet pass — {outcomes[1]}" in text
        )


def test_activation_refused_shows_the_problems_on_the_flow(shop: Shop) -> None:
    b = shop.create("Reminder")
    b.press("add|start|start|send")
    b.press("save", **{"text.en.body": "Still there, {{ traits.first_name }}?"})
    assert b.status == 200
    with control_session() as control:  # an admin turns the channel off meanwhile
        set_enabled(control, get_tenant(control, TENANT), get_host(), CHANNEL, False)
        control.commit()

    answer = shop.client.post(f"{b.url}/activate", data={"csrf_token": form_values(b.html)["csrf_token"]})
    assert answer.status_code == 422 and "Not activated" in answer.text
    assert "channel: channel 'recording_channel' is not enabled" in unescape(box(answer.text, "s1"))
    assert b.journey(shop.database).status == JourneyStatus.draft and not audited("journey.activate")

    csrf = form_values(b.html)["csrf_token"]
    again = shop.client.post(f"/t/{TENANT}/journeys/new", data={"csrf_token": csrf, "name": "Reminder"})
    assert again.status_code == 422 and "A journey is already named &#39;Reminder&#39;" in again.text
