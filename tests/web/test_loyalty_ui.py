"""The loyalty pages through the real forms (CSRF, roles, HTMX): programs, tiers, earning rules and
"test this rule on a profile".

A shop with two customers (in through the real ingestion and processing): Ann in France and Bob
in Germany, each with an order. A marketer starts a program, gives it tiers, writes a rule with a
property filter and a profile condition, tries it on the customers and activates it; an analyst
sees everything and changes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from core.audit.models import AuditEntry
from core.db.engines import control_session, tenant_engine
from core.ingest.service import accept
from core.loyalty import ledger
from core.loyalty.ledger import Posting
from core.loyalty.models import EarningRule, EntryKind, LedgerEntry, LoyaltyMember, LoyaltyProgram, Tier
from core.loyalty.programs import ProgramIn
from core.profiles.jobs import process_events
from core.profiles.service import find_by_identifier
from core.tenancy.members import put_member
from core.tenancy.tenants import get_tenant
from tests.support import PASSWORD, csrf_of, login

TENANT = "shop"
HTMX = {"HX-Request": "true"}
ORDER = {"revenue": 42.5, "currency": "EUR", "order_id": "o-1"}


@dataclass
class Shop:
    """The tenant, a signed-in marketer's client and the customers' profile ids."""

    installation: Any
    client: TestClient
    database: str
    people: dict[str, str]

    @property
    def base(self) -> str:
        return f"/t/{TENANT}/loyalty"

    @property
    def csrf(self) -> str:
        return csrf_of(self.client, self.base)

    def session(self) -> Session:
        """A session on the tenant's database."""
        return Session(tenant_engine(self.database), expire_on_commit=False)

    def create_program(self, **fields: str) -> int:
        """Start a program through the settings form; its id."""
        answer = self.client.post(f"{self.base}/programs/new", data=program_form(self.csrf, **fields),
                                  follow_redirects=False)  # fmt: skip
        assert answer.status_code == 303, answer.text
        found = re.fullmatch(rf"/t/{TENANT}/loyalty/programs/(\d+)", answer.headers["location"])
        assert found
        return int(found.group(1))

    def rules(self, program_id: int) -> list[EarningRule]:
        with self.session() as session:
            query = (
                select(EarningRule).where(EarningRule.program_id == program_id).order_by(col(EarningRule.id))
            )
            return list(session.exec(query))


def program_form(csrf: str, **fields: str) -> dict[str, str]:
    """The settings form as a browser posts it: the defaults, a key and a name."""
    values = dict.fromkeys(ProgramIn.model_fields, "")
    values.update(key="club", name="Coffee Club", currency="points", rounding="down", expiry_policy="never",
                  expiry_months="12", expiry_day="12-31", tier_basis="points", qualifying_months="12",
                  period_anchor="2026-01-01", amount_property="revenue", refund_events="Order Refunded\nOrder Cancelled",
                  referral_event="Signed Up", purchase_event="Order Completed", referrer_points="0",
                  referee_points="0")  # fmt: skip
    return {"csrf_token": csrf, **values, **fields}


def rule_form(csrf: str, **fields: str) -> dict[str, str]:
    """The rule editor as a browser posts it: 10 points per EUR on orders in EUR, for profiles in France."""
    where = [{"key": "currency", "op": "=", "value": ""}]
    profile = {"all": [{"type": "trait", "key": "country", "op": "=", "value": ""}]}
    return {
        "csrf_token": csrf, "rule_id": "", "name": "Points on orders", "description": "", "event": "Order Completed",
        "where": json.dumps(where), "where.0.key": "currency", "where.0.op": "=", "where.0.value": "EUR",
        "kind": "per_amount", "points": "10", "amount_property": "", "tier_multiplier": "on", "cap_per_day": "",
        "cap_per_month": "", "starts_at": "", "ends_at": "", "rule": json.dumps(profile), "r:kind": "all",
        "r.0:type": "trait", "r.0:key": "country", "r.0:op": "=", "r.0:value": "FR", **fields,
    }  # fmt: skip


def errors_for(html: str, key: str) -> list[str]:
    """The problems shown next to one input."""
    return [unescape(m) for m in re.findall(rf'data-for="{re.escape(key)}">([^<]*)<', html)]


def tile(html: str, key: str) -> int:
    """A figure of the dashboard."""
    found = re.search(rf'data-key="{key}">\s*<dt>[^<]*</dt>\s*<dd><strong>([0-9,]+)</strong>', html)
    assert found, key
    return int(found.group(1).replace(",", ""))


def audited(action: str) -> list[AuditEntry]:
    """The audit entries of one action, oldest first."""
    with control_session() as control:
        query = select(AuditEntry).where(AuditEntry.action == action).order_by(col(AuditEntry.id))
        return list(control.exec(query))


@pytest.fixture
def shop(installation) -> Iterator[Shop]:
    """The shop on each backend, its marketer signed in."""
    created = installation.tenant(TENANT)
    with control_session() as control:
        tenant = get_tenant(control, TENANT)
        for email, role in (("mia@shop.test", "marketer"), ("ana@shop.test", "analyst")):
            put_member(control, tenant, email=email, role=role, password=PASSWORD, actor="test")
        control.commit()
    events = [
        {"type": "identify", "userId": "ann", "messageId": "id-ann",
         "traits": {"email": "ann@example.com", "name": "Ann Martin", "country": "FR"}},
        {"type": "track", "userId": "ann", "messageId": "order-ann", "event": "Order Completed", "properties": ORDER},
        {"type": "identify", "userId": "bob", "messageId": "id-bob",
         "traits": {"email": "bob@example.com", "name": "Bob Schmidt", "country": "DE"}},
        {"type": "track", "userId": "bob", "messageId": "order-bob", "event": "Order Completed", "properties": ORDER},
    ]  # fmt: skip
    with Session(tenant_engine(created.tenant.database), expire_on_commit=False) as session:
        assert not accept(session, TENANT, events).rejected
        process_events(TENANT, {})
        people = {name: find_by_identifier(session, "user_id", name).id for name in ("ann", "bob")}
    with installation.client() as client:
        login(client, "mia@shop.test")
        yield Shop(installation, client, created.tenant.database, people)


# --- programs -------------------------------------------------------------------------------------
def test_the_placeholder_is_gone_and_the_section_lists_the_programs(shop: Shop) -> None:
    page = shop.client.get(shop.base)
    assert page.status_code == 200
    assert "Points rules, tiers, rewards and the ledger" not in page.text
    assert f'<a href="{shop.base}" aria-current="page">Loyalty</a>' in page.text
    assert "No program yet." in page.text and f'href="{shop.base}/programs/new"' in page.text

    program_id = shop.create_program()
    listed = shop.client.get(shop.base).text
    assert f'href="{shop.base}/programs/{program_id}">Coffee Club</a>' in listed
    assert 'data-figure="members">0<' in listed


def test_a_program_is_created_through_the_settings_form_and_audited(shop: Shop) -> None:
    form = shop.client.get(f"{shop.base}/programs/new")
    assert form.status_code == 200
    for name in ProgramIn.model_fields:  # every setting has its input
        assert f'name="{name}"' in form.text, name
    assert 'value="rolling"' in form.text and "after they are earned" in form.text

    program_id = shop.create_program(expiry_policy="rolling", expiry_months="18", referrer_points="100",
                                     refund_events="Order Refunded\n\nReturn Accepted")  # fmt: skip

    with shop.session() as session:
        program = session.get(LoyaltyProgram, program_id)
        assert program is not None
        assert (program.key, program.name, program.expiry_policy, program.expiry_months) == (
            "club", "Coffee Club", "rolling", 18,
        )  # fmt: skip
        assert program.refund_events == ["Order Refunded", "Return Accepted"] and program.brand is None
    page = shop.client.get(f"{shop.base}/programs/{program_id}").text
    assert "Points expire 18 months after they are earned" in page
    assert "a referral earns 100 points to the referrer" in page
    (entry,) = audited("loyalty.program.create")
    assert entry.actor == "mia@shop.test" and entry.target == f"loyalty program {program_id}"


def test_the_settings_form_shows_each_problem_next_to_its_input_and_keeps_what_was_typed(shop: Shop) -> None:
    bad = program_form(shop.csrf, key="Coffee Club", name="", expiry_policy="rolling", expiry_months="0",
                       expiry_day="31-12", qualifying_months="a year", referee_points="-5")  # fmt: skip
    answer = shop.client.post(f"{shop.base}/programs/new", data=bad)

    assert answer.status_code == 422
    assert errors_for(answer.text, "key")[0].startswith("Use lowercase letters")
    assert errors_for(answer.text, "name") == ["Required."]
    assert errors_for(answer.text, "expiry_day") == ["Give the day as MM-DD, e.g. 12-31."]
    assert errors_for(answer.text, "qualifying_months") == ["A whole number."]
    assert errors_for(answer.text, "referee_points") == ["At least 0."]
    assert 'name="key" value="Coffee Club"' in answer.text and 'value="a year"' in answer.text
    with shop.session() as session:
        assert session.exec(select(LoyaltyProgram)).all() == []

    rolling = shop.client.post(f"{shop.base}/programs/new", data=program_form(shop.csrf, expiry_policy="rolling",
                                                                              expiry_months="0"))  # fmt: skip
    assert errors_for(rolling.text, "expiry_months") == ["Rolling expiry needs expiry_months of at least 1."]

    shop.create_program()
    taken = shop.client.post(f"{shop.base}/programs/new", data=program_form(shop.csrf, name="Tea Club"))
    assert taken.status_code == 422
    assert errors_for(taken.text, "key") == ["The program 'Coffee Club' already has this key."]


def test_the_settings_change_but_the_key_stays(shop: Shop) -> None:
    program_id = shop.create_program()
    url = f"{shop.base}/programs/{program_id}/settings"
    form = shop.client.get(url).text
    assert 'value="club" disabled' in form and 'name="name" value="Coffee Club"' in form

    answer = shop.client.post(url, data=program_form(shop.csrf, key="other", name="Coffee Lovers",
                                                     tier_basis="spend"), follow_redirects=False)  # fmt: skip

    assert answer.status_code == 303
    with shop.session() as session:
        program = session.get(LoyaltyProgram, program_id)
        assert program is not None and (program.key, program.name, program.tier_basis) == (
            "club",
            "Coffee Lovers",
            "spend",
        )
    assert [e.target for e in audited("loyalty.program.update")] == [f"loyalty program {program_id}"]


# --- tiers and the dashboard --------------------------------------------------------------------------
def test_tiers_are_added_changed_and_removed_and_a_held_tier_stays(shop: Shop) -> None:
    program_id = shop.create_program()
    page = f"{shop.base}/programs/{program_id}"

    def tier(target: str, **fields: str) -> Any:
        data = {
            "csrf_token": shop.csrf,
            "name": "",
            "threshold": "",
            "multiplier": "1",
            "benefits": "",
            **fields,
        }
        return shop.client.post(f"{page}/tiers{target}", data=data, follow_redirects=False)

    assert tier("", name="Silver", threshold="100").status_code == 303
    assert (
        tier("", name="Gold", threshold="1000", multiplier="1.5", benefits="Free delivery").status_code == 303
    )
    clash = tier("", name="Bronze", threshold="100", multiplier="0")
    assert clash.status_code == 422
    assert errors_for(clash.text, "threshold") == ["Silver already starts at 100."]
    assert errors_for(clash.text, "multiplier") == ["More than 0."]
    assert 'name="name" value="Bronze"' in clash.text  # the add form is shown again as typed

    with shop.session() as session:
        tiers = {t.name: t for t in session.exec(select(Tier))}
    gold, silver = tiers["Gold"], tiers["Silver"]
    editing = shop.client.get(f"{page}?tier={gold.id}").text
    assert f'action="{page}/tiers/{gold.id}"' in editing and 'value="Free delivery"' in editing
    assert tier(f"/{gold.id}", name="Gold", threshold="1000", multiplier="2").status_code == 303
    with shop.session() as session:
        ledger.post(session, session.get(LoyaltyProgram, program_id),
                    [Posting(shop.people["ann"], 1200, EntryKind.adjust, key="gift", qualifying=1200)])  # fmt: skip
        session.commit()

    held = shop.client.post(f"{page}/tiers/{gold.id}/delete", data={"csrf_token": shop.csrf})
    assert held.status_code == 409 and "Members hold tier &#39;Gold&#39;" in held.text
    removed = shop.client.post(f"{page}/tiers/{silver.id}/delete", data={"csrf_token": shop.csrf},
                               follow_redirects=False)  # fmt: skip
    assert removed.status_code == 303

    shown = shop.client.get(page).text
    assert 'data-tier="Gold"' in shown and 'data-tier="Silver"' not in shown and "×2" in shown
    assert (
        tile(shown, "members") == 1 and tile(shown, "issued") == 1200 and tile(shown, "outstanding") == 1200
    )
    assert re.search(r'data-members-of="Gold"><td>Gold</td>.*?<td class="num">1</td>', shown, re.S)
    assert [
        len(audited(a)) for a in ("loyalty.tier.create", "loyalty.tier.update", "loyalty.tier.delete")
    ] == [2, 1, 1]


# --- earning rules ------------------------------------------------------------------------------------
def test_a_rule_with_a_filter_and_a_profile_condition_is_written_saved_and_activated(shop: Shop) -> None:
    program_id = shop.create_program()
    rules = f"{shop.base}/programs/{program_id}/rules"
    editor = shop.client.get(f"{rules}/new")
    assert editor.status_code == 200
    assert '<option value="Order Completed">' in editor.text  # the tenant's event names are suggested
    assert 'id="builder"' in editor.text and f'hx-post="{rules}/condition/builder"' in editor.text

    added = shop.client.post(f"{rules}/editor", data={**rule_form(shop.csrf), "where": "[]", "action": "where-add"},
                             headers=HTMX)  # fmt: skip
    assert (
        added.status_code == 200 and 'id="rule-fields"' in added.text and 'name="where.0.key"' in added.text
    )
    condition = shop.client.post(f"{rules}/condition/builder", data={**rule_form(shop.csrf), "action": "add:r:event"},
                                 headers=HTMX)  # fmt: skip
    assert 'name="r.1:event"' in condition.text and '<aside id="preview"' in condition.text
    preview = shop.client.post(f"{rules}/condition/preview", data=rule_form(shop.csrf), headers=HTMX)
    assert re.search(r'id="live-count">1</strong> profile matches', preview.text)  # Ann, in France
    multiplier = shop.client.post(
        f"{rules}/editor", data=rule_form(shop.csrf, kind="multiplier"), headers=HTMX
    )
    assert "Multiply by" in multiplier.text and 'name="cap_per_day"' not in multiplier.text

    saved = shop.client.post(
        f"{rules}/new", data=rule_form(shop.csrf, cap_per_day="500"), follow_redirects=False
    )
    assert saved.status_code == 303, saved.text

    (rule,) = shop.rules(program_id)
    assert (rule.name, rule.event, rule.kind, rule.points, rule.status) == (
        "Points on orders", "Order Completed", "per_amount", 10, "draft",
    )  # fmt: skip
    assert rule.where == [{"key": "currency", "op": "=", "value": "EUR"}]
    assert rule.profile_rule == {"all": [{"type": "trait", "key": "country", "op": "=", "value": "FR"}]}
    assert rule.cap_per_day == 500 and rule.amount_property is None
    page = shop.client.get(f"{shop.base}/programs/{program_id}").text
    assert "10 points per unit of revenue on Order Completed where currency = EUR, at most 500 a day" in page
    assert "country = FR" in page and 'data-status="draft"' in page

    activated = shop.client.post(
        f"{rules}/{rule.id}/activate", data={"csrf_token": shop.csrf}, follow_redirects=False
    )
    assert activated.status_code == 303
    assert shop.rules(program_id)[0].status == "active"
    assert 'data-status="active"' in shop.client.get(f"{shop.base}/programs/{program_id}").text
    again = shop.client.post(f"{rules}/{rule.id}/activate", data={"csrf_token": shop.csrf})
    assert again.status_code == 409 and "is active: it cannot become active" in again.text

    edited = shop.client.get(f"{rules}/{rule.id}").text
    assert (
        "This rule is active" in edited and 'name="where.0.value" id="f-where-0-value" value="EUR"' in edited
    )
    assert 'name="r.0:value" id="f-r-0-value" value="FR"' in edited
    assert shop.client.post(f"{rules}/{rule.id}/end", data={"csrf_token": shop.csrf},
                            follow_redirects=False).status_code == 303  # fmt: skip
    assert shop.rules(program_id)[0].status == "ended"
    assert [
        len(audited(a)) for a in ("loyalty.rule.create", "loyalty.rule.active", "loyalty.rule.ended")
    ] == [1, 1, 1]


def test_the_rules_problems_are_shown_next_to_their_inputs(shop: Shop) -> None:
    program_id = shop.create_program()
    rules = f"{shop.base}/programs/{program_id}/rules"

    typed = shop.client.post(f"{rules}/new", data=rule_form(shop.csrf, event="", points="0", starts_at="2026-05-02T10:00",
                                                             ends_at="2026-05-01T10:00"))  # fmt: skip
    assert typed.status_code == 422
    assert errors_for(typed.text, "event") == ["Required."]
    assert errors_for(typed.text, "points") == ["More than 0."]
    assert errors_for(typed.text, "ends_at") == ["The end comes after the start."]

    wrong = shop.client.post(f"{rules}/new", data=rule_form(shop.csrf, **{"where.0.key": "", "r.0:key": ""}))
    assert wrong.status_code == 422
    assert errors_for(wrong.text, "where.0")[0].startswith("property: give a name")
    assert "The profile condition has problems" in wrong.text
    assert re.search(r'id="problems-n-r-0"[^>]*><p class="field-error">key: give a name', wrong.text)
    assert 'name="where.0.value" id="f-where-0-value" value="EUR"' in wrong.text  # kept as typed

    assert (
        shop.client.post(f"{rules}/new", data=rule_form(shop.csrf), follow_redirects=False).status_code == 303
    )
    twice = shop.client.post(f"{rules}/new", data=rule_form(shop.csrf))
    assert errors_for(twice.text, "name") == ["Another rule of this program has this name."]
    assert len(shop.rules(program_id)) == 1


def test_a_dry_run_shows_what_a_purchase_would_earn_and_records_nothing(shop: Shop) -> None:
    program_id = shop.create_program()
    rules = f"{shop.base}/programs/{program_id}/rules"
    found = shop.client.get(f"{rules}/profiles", params={"q": "ann@example.com"}, headers=HTMX)
    assert (
        f'"profile_id": "{shop.people["ann"]}"' in unescape(found.text) and "Test on Ann Martin" in found.text
    )

    def dry_run(person: str, properties: str = "", **fields: str) -> Any:
        data = {**rule_form(shop.csrf, **fields), "profile_id": shop.people[person], "properties": properties}
        return shop.client.post(f"{rules}/dry-run", data=data, headers=HTMX)

    written = dry_run("ann", '{"revenue": 12.34, "currency": "EUR"}')
    assert written.status_code == 200
    assert 'data-points="123"' in written.text and "as if it happened now" in written.text
    assert written.text.count('data-passed="yes"') == 3  # currency, profile condition, dates

    latest = dry_run("ann")
    assert 'data-points="425"' in latest.text and "latest &#39;Order Completed&#39; event" in latest.text

    elsewhere = dry_run("bob")
    assert 'data-points="0"' in elsewhere.text
    assert re.search(r'data-passed="no">.*?the profile matches the profile condition', elsewhere.text, re.S)

    malformed = dry_run("ann", '{"revenue": 12,}')
    assert malformed.status_code == 422 and "The event properties are not valid JSON" in malformed.text
    listed = dry_run("ann", "[1, 2]")
    assert "Write the event properties as a JSON object" in listed.text
    unfinished = dry_run("ann", points="")
    assert unfinished.status_code == 422 and "Points: A number." in unfinished.text

    with shop.session() as session:
        assert (
            session.exec(select(LedgerEntry)).all() == [] and session.exec(select(LoyaltyMember)).all() == []
        )
        assert session.exec(select(EarningRule)).all() == []


def test_an_analyst_sees_loyalty_but_cannot_change_anything(shop: Shop) -> None:
    program_id = shop.create_program()
    shop.client.post(f"{shop.base}/programs/{program_id}/rules/new", data=rule_form(shop.csrf))
    (rule,) = shop.rules(program_id)
    page = f"{shop.base}/programs/{program_id}"
    analyst = shop.installation.client()
    login(analyst, "ana@shop.test")
    csrf = csrf_of(analyst, shop.base)

    listed = analyst.get(shop.base)
    assert listed.status_code == 200 and "Coffee Club" in listed.text and "New program" not in listed.text
    shown = analyst.get(page)
    assert shown.status_code == 200 and "Points on orders" in shown.text
    assert "Activate</button>" not in shown.text and "Add a tier" not in shown.text
    assert f'href="{page}/settings"' not in shown.text and f'href="{page}/rules/{rule.id}"' not in shown.text
    refused = {
        ("GET", f"{shop.base}/programs/new"), ("POST", f"{shop.base}/programs/new"), ("GET", f"{page}/settings"),
        ("POST", f"{page}/settings"), ("POST", f"{page}/tiers"), ("GET", f"{page}/rules/new"),
        ("POST", f"{page}/rules/new"), ("POST", f"{page}/rules/{rule.id}/activate"),
        ("POST", f"{page}/rules/{rule.id}/end"), ("GET", f"{page}/rules/{rule.id}"),
    }  # fmt: skip
    for method, url in sorted(refused):
        data = {**program_form(csrf), **rule_form(csrf)} if method == "POST" else None
        answer = analyst.request(method, url, data=data, follow_redirects=False)
        assert answer.status_code == 403, (method, url)
    with shop.session() as session:
        assert len(session.exec(select(LoyaltyProgram)).all()) == 1 and session.exec(select(Tier)).all() == []
        assert [r.status for r in session.exec(select(EarningRule))] == ["draft"]
