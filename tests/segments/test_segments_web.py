"""The audience builder and the segment pages, through the real forms (CSRF, roles, HTMX partials).

Customers come in through the real ingestion and processing. The builder posts its whole form on
every edit: the rule's JSON in a hidden field plus one input per field, named ``<path>:<field>``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from core.audit.models import AuditEntry
from core.db.engines import control_session, tenant_engine
from core.ingest.service import accept
from core.loyalty.models import LoyaltyMember, LoyaltyProgram, Tier
from core.plugin_api import SegmentConditionType, hookimpl
from core.plugins import get_host
from core.profiles.jobs import process_events
from core.queue.models import Job
from core.segments.clock import Clock
from core.segments.jobs import REFRESH_SEGMENTS, refresh_segments
from core.segments.models import Segment
from core.segments.service import TenantScope, create_segment
from core.tenancy.members import put_member
from core.tenancy.plugin_settings import set_enabled
from core.tenancy.tenants import get_tenant
from tests.support import PASSWORD, csrf_of, login
from web.segment_builder.form import locate, rule_from_form
from web.segment_builder.options import Options
from web.segment_builder.tree import apply_action, normalize
from web.segment_builder.values import shown, typed

TENANT = "shop"
NOW = datetime.now(UTC)
HTMX = {"HX-Request": "true"}
FRENCH = {"type": "trait", "key": "country", "op": "=", "value": "FR"}
BUYERS = {"type": "event", "event": "Order Completed", "op": ">=", "value": 1, "window": {"last_days": 30}}


def identify(user: str, **traits: Any) -> dict[str, Any]:
    """An identify call setting ``traits``."""
    return {"type": "identify", "userId": user, "messageId": f"id-{user}", "traits": traits}


def bought(user: str, order: str, days_ago: int) -> dict[str, Any]:
    """An order placed ``days_ago`` days ago."""
    return {"type": "track", "userId": user, "event": "Order Completed", "messageId": f"o-{order}",
            "timestamp": (NOW - timedelta(days=days_ago)).isoformat(),
            "properties": {"order_id": order, "revenue": 30.0}}  # fmt: skip


class Shop:
    """A tenant with five customers, a signed-in admin and helpers to post the builder's form."""

    def __init__(self, client: TestClient, database: str) -> None:
        self.client, self.database = client, database
        self.csrf = csrf_of(client, f"/t/{TENANT}/segments/new")

    def post(self, path: str, rule: Any, fields: dict[str, Any] | None = None, **extra: Any) -> Any:
        """Post the builder's form (the rule's JSON, the inputs) to ``/t/shop/segments<path>`` as HTMX."""
        data = {"rule": json.dumps(rule), "csrf_token": self.csrf, **(fields or {}), **extra}
        return self.client.post(f"/t/{TENANT}/segments{path}", data=data, headers=HTMX)

    def session(self) -> Session:
        """A session on the tenant's database."""
        return Session(tenant_engine(self.database), expire_on_commit=False)

    def profile_id(self, user: str) -> str:
        """The profile of a user id."""
        with self.session() as session:
            query = sa.text("SELECT profile_id FROM identity WHERE type = 'user_id' AND value = :v")
            return str(session.connection().execute(query, {"v": user}).scalar_one())


def live_count(html: str) -> int | None:
    """The live count a preview shows (None: no count)."""
    found = re.search(r'id="live-count">([0-9,]+)<', html)
    return int(found.group(1).replace(",", "")) if found else None


def problems(html: str) -> list[str]:
    """The problems shown next to the conditions."""
    return [
        m.replace("&#39;", "'").replace("&gt;", ">")
        for m in re.findall(r'class="field-error">([^<]*)<', html)
    ]


@pytest.fixture
def shop(installation) -> Iterator[Shop]:
    """The tenant with its customers, WhatsApp enabled, a marketer and an analyst."""
    created = installation.tenant(TENANT)
    with control_session() as control:
        set_enabled(control, created.tenant, get_host(), "whatsapp", True)
        put_member(
            control, created.tenant, email="mia@shop.test", role="marketer", password=PASSWORD, actor="t"
        )
        put_member(
            control, created.tenant, email="ana@shop.test", role="analyst", password=PASSWORD, actor="t"
        )
        control.commit()
    events = [
        identify("ann", name="Ann Martin", country="FR", email="ann@example.com", whatsapp_id="33611111111",
                 consent={"whatsapp": True}),
        identify("bob", name="Bob Rossi", country="FR", consent={"whatsapp": True}),
        identify("chloe", name="Chloé Dubois", country="FR", age=41),
        identify("dev", name="Dev Nguyen", country="DE", phone="+4915112345678"),
        identify("elif", name="Elif Silva", country="ES", vip=True),
        bought("ann", "a1", 3), bought("ann", "a2", 10), bought("chloe", "c1", 90), bought("dev", "d1", 5),
    ]  # fmt: skip
    with Session(tenant_engine(created.tenant.database)) as session:
        assert not accept(session, TENANT, events).rejected
    process_events(TENANT, {})
    with installation.client() as client:
        login(client, f"admin@{TENANT}.test")
        yield Shop(client, created.tenant.database)


# --- the form and its values, without a server ------------------------------------------------
def test_typed_values_read_back_as_they_are_shown() -> None:
    assert [typed(t) for t in ["42", "-3.5", "true", "false", '"42"', "FR", " 2025-01-31 ", "007", ""]] == [
        42, -3.5, True, False, "42", "FR", "2025-01-31", "007", ""]  # fmt: skip
    for value in [42, 2.5, 1e-07, 1e20, True, "FR", "42", "true", " padded", "007", '"quoted"', ""]:
        assert typed(shown(value)) == value, value


def test_the_form_rebuilds_the_rule_and_actions_edit_the_tree() -> None:
    rule = {"all": [{"type": "trait", "key": "", "op": "=", "value": ""}, {"any": [BUYERS]}]}
    form = {"rule": json.dumps(rule), "r:kind": "any", "r.0:type": "trait", "r.0:key": " age ", "r.0:op": "between",
            "r.0:value": "30", "r.1:kind": "any", "r.1.0:type": "event", "r.1.0:event": "Order Completed",
            "r.1.0:performed": "yes", "r.1.0:measure": "sum", "r.1.0:op": ">=", "r.1.0:value": "100",
            "r.1.0:window": "last", "r.1.0:window.last_days": "7"}  # fmt: skip
    assert rule_from_form(form, {}) == {"any": [
        {"type": "trait", "key": "age", "op": "between", "value": [30, ""]},
        {"any": [{"type": "event", "event": "Order Completed", "measure": "sum", "property": "", "op": ">=",
                  "value": 100, "window": {"last_days": 7}}]},
    ]}  # fmt: skip
    assert normalize(FRENCH) == {"all": [FRENCH]} and normalize(None) == {"all": []}
    options = Options(TenantScope(Clock.at(), {}, {}, frozenset()), segments=[(7, "Buyers")])
    grown = apply_action({"all": [FRENCH]}, "group:r:any", options)
    negated = apply_action(grown, "negate:r.0", options)
    assert negated == {"all": [{"not": FRENCH}, {"any": []}]}
    assert apply_action(negated, "negate:r.0", options) == grown
    assert apply_action(negated, "remove:r.0.n", options) == {"all": [{"any": []}]}
    assert apply_action(negated, "remove:r", options) == negated
    assert apply_action(negated, "add:r.1:segment", options)["all"][1] == {
        "any": [{"type": "segment", "segment": 7}]
    }
    assert apply_action(negated, "add:r.1:nonsense", options) == negated
    assert locate("all[1].any[0].where[2].value") == ("r.1.0", "where[2].value")
    assert locate("not.all[0]") == ("r.n.0", "") and locate("") == ("r", "")


# --- the builder -------------------------------------------------------------------------------
def test_the_preview_counts_the_profiles_the_edited_rule_matches(shop: Shop) -> None:
    page = shop.client.get(f"/t/{TENANT}/segments/new")
    assert page.status_code == 200 and 'id="builder"' in page.text and live_count(page.text) == 5
    assert '<option value="country">' in page.text and '<option value="Order Completed">' in page.text

    added = shop.post("/builder", {"all": []}, action="add:r:trait")
    assert added.status_code == 200 and 'name="r.0:key"' in added.text and 'hx-swap-oob="true"' in added.text
    blank = {"all": [{"type": "trait", "key": "", "op": "=", "value": ""}]}
    typed_in = {"r.0:type": "trait", "r.0:key": "country", "r.0:op": "=", "r.0:value": "FR"}
    french = shop.post("/preview", blank, typed_in)
    assert french.status_code == 200 and live_count(french.text) == 3
    for user in ("ann", "bob", "chloe"):
        assert f'/t/{TENANT}/profiles/{shop.profile_id(user)}"' in french.text
    assert f"/profiles/{shop.profile_id('dev')}" not in french.text
    # Reach per channel: WhatsApp consent for ann and bob; only ann has a WhatsApp address.
    reach = re.search(r"<td>WhatsApp</td><td[^>]*>(\d+)</td>\s*<td[^>]*>(\d+)</td>", french.text)
    assert reach and reach.groups() == ("2", "1")
    in_list = shop.post("/preview", blank, {**typed_in, "r.0:value": "FR, ES"})
    assert live_count(in_list.text) == 0  # still "=": "FR, ES" is one text; lists are for "is one of"
    one_of = shop.post("/builder", blank, {**typed_in, "r.0:op": "in"})
    assert 'name="r.0:value" id="f-r-0-value" value="FR"' in one_of.text and live_count(one_of.text) == 3
    listed = {"all": [{"type": "trait", "key": "country", "op": "in", "value": ["FR"]}]}
    assert (
        live_count(shop.post("/preview", listed, {**typed_in, "r.0:op": "in", "r.0:value": "FR, ES"}).text)
        == 4
    )

    nested = {
        "all": [
            FRENCH,
            {"any": [{"type": "event", "event": "", "op": ">=", "value": 1, "window": {"last_days": 30}}]},
        ]
    }
    fields = {"r.0:type": "trait", "r.0:key": "country", "r.0:op": "=", "r.0:value": "FR", "r.1:kind": "any",
              "r.1.0:type": "event", "r.1.0:event": "Order Completed", "r.1.0:performed": "yes",
              "r.1.0:measure": "count", "r.1.0:op": ">=", "r.1.0:value": "2", "r.1.0:window": "last",
              "r.1.0:window.last_days": "30"}  # fmt: skip
    assert live_count(shop.post("/preview", nested, fields).text) == 1  # ann bought twice this month
    never = shop.post("/builder", nested, {**fields, "r.1.0:performed": "no"})
    assert live_count(never.text) == 2 and 'name="r.1.0:op"' not in never.text  # bob and chloe
    vip = {"all": [{"type": "trait", "key": "vip", "op": "=", "value": True}]}
    assert live_count(shop.post("/preview", vip).text) == 1
    age = {"all": [{"type": "trait", "key": "age", "op": "between", "value": [40, 50]}]}
    assert live_count(shop.post("/preview", age).text) == 1


def test_event_conditions_filter_by_property_and_measure_totals(shop: Shop) -> None:
    event = {"type": "event", "event": "Order Completed", "op": ">=", "value": 1, "window": {"last_days": 30}}
    filtered = shop.post("/builder", {"all": [event]}, action="where-add:r.0")
    assert 'name="r.0:where.0.key"' in filtered.text and "+ Property filter" in filtered.text
    fields = {"r.0:type": "event", "r.0:event": "Order Completed", "r.0:performed": "yes", "r.0:measure": "count",
              "r.0:op": ">=", "r.0:value": "1", "r.0:window": "last", "r.0:window.last_days": "30",
              "r.0:where.0.key": "order_id", "r.0:where.0.op": "in", "r.0:where.0.value": "a1, d1"}  # fmt: skip
    with_filter = {"all": [{**event, "where": [{"key": "order_id", "op": "in", "value": []}]}]}
    assert live_count(shop.post("/preview", with_filter, fields).text) == 2  # ann's a1, dev's d1
    removed = shop.post("/builder", with_filter, fields, action="where-remove:r.0:0")
    assert 'name="r.0:where.0.key"' not in removed.text and live_count(removed.text) == 2  # ann, dev
    summed = shop.post("/builder", {"all": [event]}, {**fields, "r.0:measure": "sum"})
    assert 'name="r.0:property"' in summed.text and problems(summed.text) == [  # no filter in this rule
        "property: give a name of 1-200 characters, without quotes or backslashes"
    ]
    total = {"all": [{**event, "measure": "sum", "property": "revenue", "op": ">=", "value": 60}]}
    total_fields = {"r.0:type": "event", "r.0:event": "Order Completed", "r.0:performed": "yes",
                    "r.0:measure": "sum", "r.0:property": "revenue", "r.0:op": ">=", "r.0:value": "60",
                    "r.0:window": "last", "r.0:window.last_days": "30"}  # fmt: skip
    assert live_count(shop.post("/preview", total, total_fields).text) == 1  # ann: 2 x 30
    switched = shop.post("/builder", total, {**total_fields, "r.0:window": "dates"})
    assert 'name="r.0:window.since"' in switched.text and live_count(switched.text) == 1  # the last 30 days
    dated = {"all": [{**total["all"][0], "window": {"since": "2000-01-01"}}]}
    recent = {**total_fields, "r.0:window": "dates", "r.0:window.until": "",
              "r.0:window.since": (NOW - timedelta(days=5)).date().isoformat()}  # fmt: skip
    assert live_count(shop.post("/preview", dated, recent).text) == 0  # ann's last 5 days: 30
    assert live_count(shop.post("/preview", dated, {**recent, "r.0:window.since": "2000-01-01"}).text) == 1
    everyone = shop.post("/builder", dated, {**recent, "r.0:window": "all"})
    assert live_count(everyone.text) == 1 and 'name="r.0:window.since"' not in everyone.text


def test_a_computed_field_offers_its_own_operators_and_choices(shop: Shop) -> None:
    orders = {"all": [{"type": "computed", "key": "orders", "op": ">=", "value": 2}]}
    fields = {"r.0:type": "computed", "r.0:key": "orders", "r.0:op": ">=", "r.0:value": "2"}
    assert live_count(shop.post("/preview", orders, fields).text) == 1  # ann
    assert (
        live_count(shop.post("/preview", orders, {**fields, "r.0:value": "0"}).text) == 5
    )  # 0 without orders
    rfm = shop.post("/builder", orders, {**fields, "r.0:key": "rfm_segment"})
    assert '<select multiple size="4" name="r.0:value"' in rfm.text
    assert '<option value="champions" selected>champions</option>' in rfm.text
    assert (
        '<option value="&lt;">' not in rfm.text
        and '<option value="in" selected>is one of</option>' in rfm.text
    )
    last = shop.post("/builder", orders, {**fields, "r.0:key": "last_order_at"})
    assert '<option value="within last days" selected>' in last.text and 'type="number" min="0"' in last.text
    assert live_count(last.text) == 2  # ann and dev ordered in the last 30 days (chloe 90 days ago)


def test_a_bad_rule_shows_its_problems_next_to_the_conditions_and_no_count(shop: Shop) -> None:
    bad = {"all": [
        {"type": "trait", "key": "country", "op": "≈", "value": "FR"},
        {"any": [{"type": "computed", "key": "orders", "op": ">=", "value": "many"}]},
        {"type": "segment", "segment": 999},
    ]}  # fmt: skip
    for endpoint in ("/preview", "/builder"):
        answer = shop.post(endpoint, bad)
        assert answer.status_code == 200 and live_count(answer.text) is None
        assert "No count while the rule has 3 problems" in answer.text
        found = problems(answer.text)
        assert any(p.startswith("op: unknown operator '≈'") for p in found), found
        assert "value: >= takes numbers" in found and "segment: there is no segment 999" in found
    slots = shop.post("/preview", bad).text
    assert re.search(r'id="problems-n-r-0" hx-swap-oob="true"><p class="field-error">op: unknown', slots)
    assert re.search(r'id="problems-n-r-1-0" hx-swap-oob="true"><p class="field-error">value: ', slots)
    assert re.search(r'id="problems-n-r-2" hx-swap-oob="true"><p class="field-error">segment: there', slots)
    assert 'id="problems-n-r-1" hx-swap-oob="true"></div>' in slots  # cleared where nothing is wrong
    typed_badly = {"r.0:type": "computed", "r.0:key": "orders", "r.0:op": ">=", "r.0:value": "lots"}
    answer = shop.post("/preview", {"all": [{"type": "computed", "key": "orders", "op": ">=", "value": 1}]},
                       typed_badly)  # fmt: skip
    assert answer.status_code == 200 and problems(answer.text) == ["value: >= takes numbers"]
    for garbage in ("not json", json.dumps([1, 2]), json.dumps({"all": "x"})):
        answer = shop.client.post(f"/t/{TENANT}/segments/builder", data={"rule": garbage, "csrf_token": shop.csrf},
                                  headers=HTMX)  # fmt: skip
        assert answer.status_code == 200, garbage
    assert shop.post("/builder", {"all": []}, action="remove:r.7").status_code == 200


def test_the_builder_refuses_a_post_without_csrf_token(shop: Shop) -> None:
    answer = shop.client.post(f"/t/{TENANT}/segments/preview", data={"rule": "{}"})
    assert answer.status_code == 403


# --- saving ------------------------------------------------------------------------------------
def saved_segment(shop: Shop, name: str) -> Segment:
    """The stored segment named ``name``."""
    with shop.session() as session:
        found = session.exec(select(Segment).where(Segment.name == name)).one()
        return found


def test_saving_creates_the_segment_queues_its_evaluation_and_audits_it(shop: Shop) -> None:
    rule = {"all": [FRENCH, {"any": [BUYERS]}]}
    answer = shop.post("/new", rule, name="French buyers", description="For the spring campaign")
    assert answer.status_code == 200, answer.text
    segment = saved_segment(shop, "French buyers")
    assert answer.headers["HX-Redirect"] == f"/t/{TENANT}/segments/{segment.id}"
    assert segment.rule == rule and segment.description == "For the spring campaign"
    assert segment.created_by == f"admin@{TENANT}.test"
    with shop.session() as session:
        jobs = session.exec(select(Job).where(Job.kind == REFRESH_SEGMENTS)).all()
    assert [job.payload for job in jobs] == [{"segment_id": segment.id}]
    # Without HTMX, a plain form post is redirected to the new segment.
    plain = shop.client.post(f"/t/{TENANT}/segments/new", follow_redirects=False,
                             data={"rule": json.dumps({"all": [FRENCH]}), "name": "French", "csrf_token": shop.csrf})  # fmt: skip
    assert plain.status_code == 303 and plain.headers["location"].startswith(f"/t/{TENANT}/segments/")

    changed = shop.post(
        f"/{segment.id}/edit", {"all": [FRENCH]}, name="French buyers (all)", segment_id=segment.id
    )
    assert changed.status_code == 200 and changed.headers["HX-Redirect"].endswith(f"/{segment.id}")
    assert saved_segment(shop, "French buyers (all)").rule == {"all": [FRENCH]}
    with control_session() as control:
        entries = control.exec(select(AuditEntry).where(col(AuditEntry.action).like("segment.%"))).all()
    assert [(e.action, e.target, e.detail) for e in sorted(entries, key=lambda e: e.id)] == [
        ("segment.create", f"segment {segment.id}", {"name": "French buyers"}),
        ("segment.create", f"segment {segment.id + 1}", {"name": "French"}),
        ("segment.update", f"segment {segment.id}", {"name": "French buyers (all)"}),
    ]  # fmt: skip


def test_saving_a_taken_name_or_a_bad_rule_explains_why_and_keeps_the_form(shop: Shop) -> None:
    assert shop.post("/new", {"all": [FRENCH]}, name="French").status_code == 200
    taken = shop.post("/new", {"all": [FRENCH]}, name="French")
    assert (
        taken.status_code == 422
        and "Not saved: A segment named &#39;French&#39; already exists." in taken.text
    )
    assert live_count(taken.text) == 3 and 'name="r.0:key"' in taken.text
    bad = shop.post("/new", {"all": [{"type": "trait", "key": "", "op": "=", "value": "x"}]}, name="Broken")
    assert bad.status_code == 422 and "fix the problems marked below" in bad.text
    assert any(p.startswith("key: give a name") for p in problems(bad.text))
    unnamed = shop.post("/new", {"all": [FRENCH]}, name="  ")
    assert (
        unnamed.status_code == 422 and "Not saved: the name: give a name of 1-200 characters." in unnamed.text
    )
    page = shop.client.post(
        f"/t/{TENANT}/segments/new", data={"rule": "{}", "name": "French", "csrf_token": shop.csrf}
    )
    assert page.status_code == 422 and "<h1>New segment</h1>" in page.text  # the whole page without HTMX
    with shop.session() as session:
        assert [s.name for s in session.exec(select(Segment))] == ["French"]
        assert len(session.exec(select(Job).where(Job.kind == REFRESH_SEGMENTS)).all()) == 1


def test_an_analyst_explores_the_builder_but_cannot_save(installation, shop: Shop) -> None:
    with installation.client() as client:
        login(client, "ana@shop.test")
        assert "New segment" not in client.get(f"/t/{TENANT}/segments").text
        page = client.get(f"/t/{TENANT}/segments/new")
        assert page.status_code == 200 and "can explore audiences here but not save them" in page.text
        assert "Save segment" not in page.text
        token = csrf_of(client, f"/t/{TENANT}/segments/new")
        rule = json.dumps({"all": [FRENCH]})
        preview = client.post(
            f"/t/{TENANT}/segments/preview", data={"rule": rule, "csrf_token": token}, headers=HTMX
        )
        assert live_count(preview.text) == 3
        refused = client.post(
            f"/t/{TENANT}/segments/new", data={"rule": rule, "name": "Mine", "csrf_token": token}
        )
        assert refused.status_code == 403
    with shop.session() as session:
        assert session.exec(select(Segment)).all() == []


# --- the detail page ---------------------------------------------------------------------------
def test_the_detail_page_shows_the_rule_in_words_the_size_and_the_members(shop: Shop) -> None:
    rule = {"all": [FRENCH, {"any": [BUYERS, {"not": {"type": "consent", "channel": "whatsapp"}}]}]}
    assert shop.post("/new", rule, name="French buyers").status_code == 200
    segment = saved_segment(shop, "French buyers")
    before = shop.client.get(f"/t/{TENANT}/segments/{segment.id}")
    assert before.status_code == 200 and "Counting… the first evaluation is queued." in before.text
    assert 'hx-trigger="every 2s"' in before.text
    refresh_segments(TENANT, {"segment_id": segment.id})

    page = shop.client.get(f"/t/{TENANT}/segments/{segment.id}")
    assert page.status_code == 200
    text = page.text
    assert "country = FR" in text and "performed Order Completed at least 1 time in the last 30 days" in text
    assert "granted marketing consent for WhatsApp" in text and "Not this:" in text
    assert re.search(r'id="segment-size">2<', text) and "every 2s" not in text
    assert "<svg" in text and "<rect" in text  # the size history
    for user in ("ann", "chloe"):  # ann bought this month; chloe has no WhatsApp consent
        assert f'/t/{TENANT}/profiles/{shop.profile_id(user)}"' in text
    assert "Ann Martin" in text and "Bob Rossi" not in text.split('id="members"')[1]
    assert f"/segments/{segment.id}/edit" in text and "Archive" in text and "export.csv" in text
    size = shop.client.get(f"/t/{TENANT}/segments/{segment.id}/size", headers=HTMX)
    assert size.status_code == 200 and "<html" not in size.text and 'id="segment-size">2<' in size.text
    listing = shop.client.get(f"/t/{TENANT}/segments")
    assert "French buyers" in listing.text and "New segment" in listing.text
    for unknown in ("999", "abc"):
        missing = shop.client.get(f"/t/{TENANT}/segments/{unknown}", headers={"accept": "text/html"})
        assert missing.status_code == 404 and "<h1>Not found</h1>" in missing.text
    assert "HX-Trigger" in size.headers  # counted: the member list reloads itself


def test_members_are_listed_page_by_page(shop: Shop) -> None:
    with shop.session() as session:
        segment = create_segment(session, "Everyone", {"all": []}, "t", {})
        session.commit()
    refresh_segments(TENANT, {"segment_id": segment.id})
    base = f"/t/{TENANT}/segments/{segment.id}"
    page = shop.client.get(f"{base}/members")
    assert page.status_code == 200 and page.text.count("/profiles/") == 5 and "Next page" not in page.text
    from web.routes import segments as module

    module.MEMBERS_PAGE, original = 2, module.MEMBERS_PAGE
    try:
        first = shop.client.get(f"{base}/members")
        cursor = re.search(r'members\?after=([^"]+)"', first.text)
        assert first.text.count("/profiles/") == 2 and cursor
        second = shop.client.get(f"{base}/members?after={cursor.group(1)}")
        assert second.text.count("/profiles/") == 2 and "First page" in second.text
        assert not set(re.findall(r"/profiles/(\w+)", first.text)) & set(
            re.findall(r"/profiles/(\w+)", second.text)
        )
    finally:
        module.MEMBERS_PAGE = original


def test_the_csv_export_lists_every_member_with_email_and_phone(shop: Shop) -> None:
    rule = {"any": [{"type": "trait", "key": "country", "op": "in", "value": ["FR", "DE"]}]}
    assert shop.post("/new", rule, name="FR + DE / 2026").status_code == 200
    segment = saved_segment(shop, "FR + DE / 2026")
    refresh_segments(TENANT, {"segment_id": segment.id})
    answer = shop.client.get(f"/t/{TENANT}/segments/{segment.id}/export.csv")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == 'attachment; filename="FR-DE-2026.csv"'
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert list(rows[0]) == ["profile_id", "name", "email", "phone", "entered_at"]
    by_name = {row["name"]: row for row in rows}
    assert sorted(by_name) == ["Ann Martin", "Bob Rossi", "Chloé Dubois", "Dev Nguyen"]
    assert by_name["Ann Martin"]["email"] == "ann@example.com" and by_name["Dev Nguyen"]["phone"].endswith(
        "5678"
    )
    assert [r["profile_id"] for r in rows] == sorted(r["profile_id"] for r in rows)
    with control_session() as control:
        assert control.exec(select(AuditEntry).where(AuditEntry.action == "segment.export")).one().target == (
            f"segment {segment.id}"
        )
    assert shop.client.get(f"/t/{TENANT}/segments/999/export.csv").status_code == 404


def test_archiving_is_refused_while_another_segment_uses_it_then_lets_members_go(shop: Shop) -> None:
    assert shop.post("/new", {"all": [FRENCH]}, name="French").status_code == 200
    french = saved_segment(shop, "French")
    users = {"all": [{"type": "segment", "segment": french.id}, {"any": [BUYERS]}]}
    assert shop.post("/new", users, name="French buyers").status_code == 200
    buyers = saved_segment(shop, "French buyers")
    edit = shop.client.get(f"/t/{TENANT}/segments/{buyers.id}/edit")
    assert f'<option value="{french.id}" selected>French</option>' in edit.text
    assert f'<option value="{buyers.id}"' not in edit.text  # a segment cannot contain itself
    detail = shop.client.get(f"/t/{TENANT}/segments/{buyers.id}").text
    assert "is in segment “French”" in detail

    refused = shop.client.post(f"/t/{TENANT}/segments/{french.id}/archive", data={"csrf_token": shop.csrf})
    assert (
        refused.status_code == 409
        and "Not archived: Segment &#39;French&#39; is used by: French buyers." in refused.text
    )
    archived = shop.client.post(f"/t/{TENANT}/segments/{buyers.id}/archive", data={"csrf_token": shop.csrf},
                                follow_redirects=False)  # fmt: skip
    assert (
        archived.status_code == 303
        and archived.headers["location"] == f"/t/{TENANT}/segments?archived=French%20buyers"
    )
    assert "Segment “French buyers” archived." in shop.client.get(archived.headers["location"]).text
    assert shop.client.get(f"/t/{TENANT}/segments/{buyers.id}").status_code == 404
    with control_session() as control:
        entry = control.exec(select(AuditEntry).where(AuditEntry.action == "segment.archive")).one()
    assert entry.target == f"segment {buyers.id}" and entry.detail == {"name": "French buyers"}


def test_roles_guard_saving_and_archiving(installation, shop: Shop) -> None:
    assert shop.post("/new", {"all": [FRENCH]}, name="French").status_code == 200
    french = saved_segment(shop, "French")
    with installation.client() as client:
        login(client, "ana@shop.test")
        token = csrf_of(client, f"/t/{TENANT}/segments")
        detail = client.get(f"/t/{TENANT}/segments/{french.id}").text
        assert "Archive" not in detail and f"/segments/{french.id}/edit" not in detail
        assert (
            client.post(f"/t/{TENANT}/segments/{french.id}/archive", data={"csrf_token": token}).status_code
            == 403
        )
        assert client.post(f"/t/{TENANT}/segments/{french.id}/edit",
                           data={"csrf_token": token, "rule": "{}", "name": "x"}).status_code == 403  # fmt: skip
    with installation.client() as client:
        login(client, "mia@shop.test")
        token = csrf_of(client, f"/t/{TENANT}/segments")
        assert "New segment" in client.get(f"/t/{TENANT}/segments").text
        answer = client.post(f"/t/{TENANT}/segments/{french.id}/edit", headers=HTMX,
                             data={"csrf_token": token, "rule": json.dumps({"all": [FRENCH]}), "name": "Français"})  # fmt: skip
        assert answer.status_code == 200 and saved_segment(shop, "Français").updated_by == "mia@shop.test"


# --- plugin condition types --------------------------------------------------------------------
class ScoreParams(BaseModel):
    """Settings of the probe's condition."""

    model_config = ConfigDict(extra="forbid")
    everyone: bool = Field(False, description="Match every profile.")
    minimum: int = Field(0, ge=0)
    labels: list[str] = []


def _score_sql(params: BaseModel, profile_table: Any) -> Any:
    assert isinstance(params, ScoreParams)
    return sa.true() if params.everyone else sa.false()


class ScorePlugin:
    """A plugin with one segment condition type."""

    @hookimpl
    def register_segment_conditions(self, register: Callable[[SegmentConditionType], None]) -> None:
        """Register ``probe.score``."""
        register(SegmentConditionType(key="probe.score", label="Has a probe score", Params=ScoreParams,
                                      to_sql=_score_sql, evaluate=lambda params, profile: params.everyone))  # fmt: skip


def test_a_plugin_condition_type_gets_a_form_from_its_parameters(shop: Shop) -> None:
    host = get_host()
    host.add(ScorePlugin(), "probe")
    with control_session() as control:
        set_enabled(control, get_tenant(control, TENANT), host, "probe", True)
        control.commit()
    added = shop.post("/builder", {"all": []}, action="add:r:probe.score")
    assert "+ Has a probe score" in added.text and 'name="r.0:params.everyone"' in added.text
    assert 'type="checkbox"' in added.text and 'name="r.0:params.minimum"' in added.text
    assert live_count(added.text) == 0
    condition = {"all": [{"type": "probe.score", "params": {}}]}
    fields = {"r.0:type": "probe.score", "r.0:params.everyone": "true", "r.0:params.minimum": "3",
              "r.0:params.labels": "a\nb"}  # fmt: skip
    assert live_count(shop.post("/preview", condition, fields).text) == 5
    bad = shop.post("/preview", condition, {**fields, "r.0:params.minimum": "-1"})
    assert bad.status_code == 200 and any("minimum" in p for p in problems(bad.text))
    assert shop.post("/new", condition, fields, name="Scored").status_code == 200
    assert saved_segment(shop, "Scored").rule == {
        "all": [{"type": "probe.score", "params": {"everyone": True, "minimum": 3, "labels": ["a", "b"]}}]
    }
    assert (
        "Has a probe score (everyone: true, minimum: 3, labels: a, b)"
        in shop.client.get(f"/t/{TENANT}/segments/{saved_segment(shop, 'Scored').id}").text
    )


def test_a_loyalty_condition_is_built_from_program_value_operator_and_tier(shop: Shop) -> None:
    assert "+ Loyalty" not in shop.client.get(f"/t/{TENANT}/segments/new").text  # no program yet
    ann, bob = shop.profile_id("ann"), shop.profile_id("bob")
    with shop.session() as session:
        club = LoyaltyProgram(key="club", name="Club", period_anchor=datetime(2026, 1, 1, tzinfo=UTC))
        session.add(club)
        session.flush()
        assert club.id is not None
        program = club.id
        gold = Tier(program_id=program, name="Gold", threshold=500)
        session.add_all([Tier(program_id=program, name="Silver", threshold=100), gold])
        session.flush()
        session.add_all([
            LoyaltyMember(program_id=program, profile_id=ann, balance=250, qualifying=600, tier_id=gold.id,
                          referral_code="ANN"),
            LoyaltyMember(program_id=program, profile_id=bob, balance=40, qualifying=40, referral_code="BOB"),
        ])  # fmt: skip
        session.commit()

    added = shop.post("/builder", {"all": []}, action="add:r:loyalty")
    assert "+ Loyalty" in added.text and f'<option value="{program}" selected>Club</option>' in added.text
    assert '<option value="balance" selected>Loyalty balance</option>' in added.text
    assert '<option value="to_next_tier">Points to next tier</option>' in added.text
    assert live_count(added.text) == 2  # a balance of at least 1: ann and bob
    balance = {"all": [{"type": "loyalty", "program": program, "field": "balance", "op": ">=", "value": 1}]}
    fields = {"r.0:type": "loyalty", "r.0:program": str(program), "r.0:field": "balance", "r.0:op": ">=",
              "r.0:value": "100"}  # fmt: skip
    assert live_count(shop.post("/preview", balance, fields).text) == 1  # ann

    tier = shop.post("/builder", balance, {**fields, "r.0:field": "tier"})
    assert '<option value="is set" selected>is set</option>' in tier.text and live_count(tier.text) == 1
    has_tier = {"all": [{"type": "loyalty", "program": program, "field": "tier", "op": "is set"}]}
    tier_fields = {"r.0:type": "loyalty", "r.0:program": str(program), "r.0:field": "tier", "r.0:op": "in"}
    one_of = shop.post("/builder", has_tier, tier_fields)
    assert '<select multiple size="4" name="r.0:value"' in one_of.text
    assert (
        '<option value="Silver">Silver</option>' in one_of.text
        and '<option value="Gold">Gold</option>' in one_of.text
    )
    assert problems(one_of.text) == ["value: in takes a non-empty list of values"]
    in_tiers = {"all": [{"type": "loyalty", "program": program, "field": "tier", "op": "in", "value": []}]}
    gold_fields = {**tier_fields, "r.0:value": "Gold"}
    assert live_count(shop.post("/preview", in_tiers, gold_fields).text) == 1  # ann

    assert shop.post("/new", in_tiers, gold_fields, name="Gold members").status_code == 200
    segment = saved_segment(shop, "Gold members")
    assert segment.rule == {
        "all": [{"type": "loyalty", "program": program, "field": "tier", "op": "in", "value": ["Gold"]}]
    }
    assert "Loyalty tier in Club is one of Gold" in shop.client.get(f"/t/{TENANT}/segments/{segment.id}").text
