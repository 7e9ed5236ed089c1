"""A program's catalogue pages: rewards, challenges and offers through the real forms (CSRF, roles).

A shop with a program ("Club", with a Gold tier), two customers and a segment of everyone. A
marketer creates, edits and withdraws what members can win; forms keep what was typed and show
each problem next to its input; an offer is assigned to the segment. What the pages show is
checked against the tables.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html import unescape
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from core.audit.models import AuditEntry
from core.db.base import utcnow
from core.db.engines import control_session, tenant_engine
from core.ingest.service import accept
from core.loyalty.models import (
    Challenge,
    ChallengeProgress,
    Coupon,
    LoyaltyProgram,
    Offer,
    Reward,
    RewardStatus,
    RuleStatus,
    Tier,
)
from core.loyalty.offers import use_coupon
from core.profiles.jobs import process_events
from core.profiles.service import find_by_identifier
from core.segments.jobs import refresh_segments
from core.segments.service import create_segment
from core.tenancy.members import put_member
from core.tenancy.tenants import get_tenant
from tests.support import PASSWORD, csrf_of, login

TENANT = "shop"
MARKETER, ANALYST = "mia@shop.test", "ana@shop.test"


@dataclass
class Catalogue:
    """The shop, its program, a tier, the customers, a segment of everyone and a marketer's browser."""

    installation: Any
    client: TestClient
    database: str
    program_id: int
    gold: int
    people: dict[str, str]
    segment_id: int
    zone: str

    @property
    def base(self) -> str:
        return f"/t/{TENANT}/loyalty/programs/{self.program_id}"

    def session(self) -> Session:
        """A session on the tenant's database."""
        return Session(tenant_engine(self.database), expire_on_commit=False)

    def post(self, path: str, client: TestClient | None = None, **form: str) -> Any:
        """Post a form of the catalogue as a browser does (with its CSRF token), not following redirects."""
        client = client or self.client
        token = csrf_of(client, f"{self.base}/rewards")
        return client.post(f"{self.base}/{path}", data={"csrf_token": token, **form}, follow_redirects=False)

    def local(self, text: str) -> datetime:
        """A time typed in the tenant's zone, as the UTC instant stored."""
        return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(self.zone)).astimezone(UTC)


def errors_for(html: str, key: str) -> list[str]:
    """The problems shown next to one input."""
    return [unescape(m) for m in re.findall(rf'data-for="{re.escape(key)}">([^<]*)<', html)]


def general_errors(html: str) -> list[str]:
    """The problems of the form as a whole."""
    return [unescape(m) for m in re.findall(r'class="general-error">([^<]*)<', html)]


def row(html: str, attribute: str, row_id: int) -> str:
    """One row of a list."""
    found = re.search(rf'<tr {attribute}="{row_id}">(.*?)</tr>', html, re.S)
    assert found, f"{attribute} {row_id} is listed"
    return found.group(1)


def figure(html: str, name: str) -> str:
    """A figure of a row (``data-<name>``)."""
    found = re.search(rf"data-{name}>([^<]*)<", html)
    assert found, name
    return found.group(1).strip()


def audited(action: str) -> list[AuditEntry]:
    """The audit entries of one action, oldest first."""
    with control_session() as control:
        query = select(AuditEntry).where(AuditEntry.action == action).order_by(col(AuditEntry.id))
        return list(control.exec(query))


@pytest.fixture
def catalogue(installation) -> Iterator[Catalogue]:
    """The shop on each backend, its marketer signed in."""
    created = installation.tenant(TENANT)
    with control_session() as control:
        tenant = get_tenant(control, TENANT)
        for email, role in ((MARKETER, "marketer"), (ANALYST, "analyst")):
            put_member(control, tenant, email=email, role=role, password=PASSWORD, actor="test")
        control.commit()
        zone = tenant.timezone
    events = [{"type": "identify", "userId": n, "messageId": f"id-{n}"} for n in ("ann", "bob")]
    with Session(tenant_engine(created.tenant.database), expire_on_commit=False) as session:
        assert not accept(session, TENANT, events).rejected
        process_events(TENANT, {})
        people = {n: find_by_identifier(session, "user_id", n).id for n in ("ann", "bob")}
        segment = create_segment(session, "Everyone", {"all": []}, "test", {})
        program = LoyaltyProgram(key="club", name="Club")
        session.add(program)
        session.commit()
        assert program.id is not None and segment.id is not None
        gold = Tier(program_id=program.id, name="Gold", threshold=500)
        session.add(gold)
        session.commit()
        assert gold.id is not None
    refresh_segments(TENANT, {"segment_id": segment.id})
    with installation.client() as client:
        login(client, MARKETER)
        yield Catalogue(installation, client, created.tenant.database, program.id, gold.id, people, segment.id,
                        zone)  # fmt: skip


# --- rewards ---------------------------------------------------------------------------------------
def test_a_reward_is_created_edited_and_archived_through_the_form(catalogue: Catalogue) -> None:
    form = catalogue.client.get(f"{catalogue.base}/rewards/new")
    assert form.status_code == 200 and 'name="cost"' in form.text and 'name="voucher_days"' in form.text
    assert f'<option value="{catalogue.gold}">Gold</option>' in form.text
    typed = {"name": "Free coffee", "description": "Any size", "cost": "100", "stock": "5",
             "per_profile_limit": "2", "min_tier_id": str(catalogue.gold), "valid_from": "2026-01-01T09:00",
             "valid_until": "2030-12-31T18:00", "voucher_days": "30"}  # fmt: skip
    answer = catalogue.post("rewards/new", **typed)
    assert answer.status_code == 303 and answer.headers["location"] == f"{catalogue.base}/rewards"
    with catalogue.session() as session:
        (reward,) = session.exec(select(Reward)).all()
    assert (reward.name, reward.cost, reward.stock, reward.per_profile_limit, reward.min_tier_id,
            reward.voucher_days) == ("Free coffee", 100, 5, 2, catalogue.gold, 30)  # fmt: skip
    assert reward.valid_from is not None and reward.valid_until is not None
    assert reward.valid_from.replace(tzinfo=UTC) == catalogue.local("2026-01-01T09:00")
    assert reward.valid_until.replace(tzinfo=UTC) == catalogue.local("2030-12-31T18:00")
    (entry,) = audited("loyalty.reward.create")
    assert entry.actor == MARKETER and entry.detail["name"] == "Free coffee"

    listing = catalogue.client.get(f"{catalogue.base}/rewards").text
    listed = row(listing, "data-reward", reward.id or 0)
    assert "Free coffee" in listed and "Gold" in listed and "30 days" in listed and "2 voucher(s)" in listed
    assert figure(listed, "issued") == "0" and figure(listed, "stock") == "5"

    edit = catalogue.client.get(f"{catalogue.base}/rewards/{reward.id}/edit").text
    assert 'name="name" value="Free coffee"' in edit and 'value="2026-01-01T09:00"' in edit
    changed = catalogue.post(f"rewards/{reward.id}/edit", **{**typed, "stock": "3", "min_tier_id": ""})
    assert changed.status_code == 303
    archived = catalogue.post(f"rewards/{reward.id}/archive")
    assert archived.status_code == 303
    with catalogue.session() as session:
        saved = session.get(Reward, reward.id)
        assert saved is not None and (saved.stock, saved.min_tier_id, saved.status) == (
            3,
            None,
            RewardStatus.archived,
        )
    assert 'class="badge">archived<' in catalogue.client.get(f"{catalogue.base}/rewards").text
    assert [len(audited(a)) for a in ("loyalty.reward.update", "loyalty.reward.archive")] == [1, 1]


def test_reward_form_problems_are_shown_by_their_inputs_and_nothing_is_saved(catalogue: Catalogue) -> None:
    answer = catalogue.post("rewards/new", name=" ", cost="0", stock="-1", voucher_days="many")
    assert answer.status_code == 422
    assert errors_for(answer.text, "name") == ["Required."]
    assert errors_for(answer.text, "cost") == ["More than 0, please."]
    assert errors_for(answer.text, "stock") == ["At least 0, please."]
    assert errors_for(answer.text, "voucher_days") == ["A whole number, please."]
    assert 'name="voucher_days" value="many"' in answer.text  # what was typed stays
    backwards = catalogue.post("rewards/new", name="Mug", cost="50", valid_from="2027-01-01T00:00",
                               valid_until="2026-01-01T00:00")  # fmt: skip
    assert backwards.status_code == 422 and general_errors(backwards.text) == [
        "valid_until must come after valid_from."
    ]
    assert catalogue.post("rewards/new", name="Mug", cost="50").status_code == 303
    taken = catalogue.post("rewards/new", name="Mug", cost="70")
    assert taken.status_code == 422 and "already has a reward named" in errors_for(taken.text, "name")[0]
    with catalogue.session() as session:
        assert [r.name for r in session.exec(select(Reward))] == ["Mug"]


# --- challenges ----------------------------------------------------------------------------------
def test_a_challenge_with_property_filters_is_created_activated_and_ended(catalogue: Catalogue) -> None:
    form = catalogue.client.get(f"{catalogue.base}/challenges/new")
    assert form.status_code == 200 and 'name="where.0.key"' in form.text and 'name="where.1.op"' in form.text
    typed = {"name": "Three coffees", "badge": "Regular", "event": "Order Completed", "goal": "events",
             "target": "3", "window_days": "30", "points": "50", "where.0.key": "category", "where.0.op": "=",
             "where.0.value": "coffee", "where.1.key": "revenue", "where.1.op": "between", "where.1.value": "2, 10",
             "where.2.key": "", "where.2.op": "=", "where.2.value": ""}  # fmt: skip
    answer = catalogue.post("challenges/new", **typed)
    assert answer.status_code == 303 and answer.headers["location"] == f"{catalogue.base}/challenges"
    with catalogue.session() as session:
        (challenge,) = session.exec(select(Challenge)).all()
    assert (challenge.status, challenge.target, challenge.window_days, challenge.points) == (
        RuleStatus.draft,
        3,
        30,
        50,
    )
    assert challenge.where == [{"key": "category", "op": "=", "value": "coffee"},
                               {"key": "revenue", "op": "between", "value": [2, 10]}]  # fmt: skip
    listed = row(
        catalogue.client.get(f"{catalogue.base}/challenges").text, "data-challenge", challenge.id or 0
    )
    assert "where category = coffee" in listed and "within 30 days" in listed and ">draft<" in listed
    edit = catalogue.client.get(f"{catalogue.base}/challenges/{challenge.id}/edit").text
    assert 'name="where.1.value" value="2, 10"' in edit and 'name="where.2.key" value=""' in edit

    distinct = {**typed, "goal": "distinct", "property": "shop", "target": "2"}
    assert catalogue.post(f"challenges/{challenge.id}/edit", **distinct).status_code == 303
    assert catalogue.post(f"challenges/{challenge.id}/activate").status_code == 303
    with catalogue.session() as session:
        session.add(ChallengeProgress(challenge_id=challenge.id or 0, profile_id=catalogue.people["ann"], progress=2,
                                      target=2, completed_at=utcnow()))  # fmt: skip
        session.add(ChallengeProgress(challenge_id=challenge.id or 0, profile_id=catalogue.people["bob"], progress=1,
                                      target=2))  # fmt: skip
        session.commit()
    listed = row(
        catalogue.client.get(f"{catalogue.base}/challenges").text, "data-challenge", challenge.id or 0
    )
    assert ">active<" in listed and "2 different <code>shop</code>" in listed
    assert figure(listed, "taking-part") == "2" and figure(listed, "completed") == "1"
    locked = catalogue.post(f"challenges/{challenge.id}/edit", **typed)
    assert locked.status_code == 422 and "only a draft changes" in general_errors(locked.text)[0]

    assert catalogue.post(f"challenges/{challenge.id}/end").status_code == 303
    again = catalogue.post(f"challenges/{challenge.id}/end")
    assert again.status_code == 409 and "has ended already" in again.text
    actions = ("loyalty.challenge.create", "loyalty.challenge.update", "loyalty.challenge.activate",
               "loyalty.challenge.end")  # fmt: skip
    assert [len(audited(a)) for a in actions] == [1, 1, 1, 1]


def test_challenge_form_problems_are_shown_and_the_filters_typed_stay(catalogue: Catalogue) -> None:
    typed = {"name": "Explorer", "badge": "Explorer", "event": "Service Booked", "goal": "distinct", "target": "0",
             "where.0.key": "category", "where.0.op": "in", "where.0.value": ""}  # fmt: skip
    answer = catalogue.post("challenges/new", **typed)
    assert answer.status_code == 422
    assert errors_for(answer.text, "target") == ["At least 1, please."]
    assert 'name="where.0.key" value="category"' in answer.text
    no_property = catalogue.post("challenges/new", **{**typed, "target": "2"})
    assert general_errors(no_property.text) == [
        "a distinct challenge needs the property whose values it counts"
    ]
    bad_filter = catalogue.post("challenges/new", **{**typed, "target": "2", "property": "service"})
    assert bad_filter.status_code == 422 and "non-empty list" in general_errors(bad_filter.text)[0]
    with catalogue.session() as session:
        assert session.exec(select(Challenge)).all() == []


# --- offers ----------------------------------------------------------------------------------------
def test_an_offer_is_created_and_assigned_to_a_segment(catalogue: Catalogue) -> None:
    typed = {
        "name": "Spring 20%",
        "value": "20% off",
        "code_prefix": "spr",
        "max_uses": "1",
        "valid_days": "14",
    }
    answer = catalogue.post("offers/new", **typed)
    assert answer.status_code == 303 and answer.headers["location"] == f"{catalogue.base}/offers"
    with catalogue.session() as session:
        (offer,) = session.exec(select(Offer)).all()
    assert (offer.program_id, offer.code_prefix, offer.valid_days) == (catalogue.program_id, "SPR", 14)
    page = catalogue.client.get(f"{catalogue.base}/offers").text
    assert f'<option value="{catalogue.segment_id}">Everyone (2)</option>' in page
    assert figure(row(page, "data-offer", offer.id or 0), "assigned") == "0"

    assigned = catalogue.post(f"offers/{offer.id}/assign", segment_id=str(catalogue.segment_id))
    assert assigned.status_code == 303
    shown = catalogue.client.get(assigned.headers["location"]).text
    assert "Spring 20%: 2 new coupon(s) assigned to the members of Everyone." in unescape(shown)
    with catalogue.session() as session:
        coupons = list(session.exec(select(Coupon)))
        assert sorted(c.profile_id for c in coupons) == sorted(catalogue.people.values())
        assert all(c.code.startswith("SPR-") for c in coupons)
        use_coupon(session, coupons[0].code, "till")
        session.commit()
    listed = row(catalogue.client.get(f"{catalogue.base}/offers").text, "data-offer", offer.id or 0)
    assert figure(listed, "assigned") == "2" and figure(listed, "used") == "1"
    (entry,) = audited("loyalty.offer.assign")
    assert entry.detail == {"name": "Spring 20%", "segment_id": catalogue.segment_id, "segment": "Everyone",
                            "assigned": 2}  # fmt: skip
    again = catalogue.post(f"offers/{offer.id}/assign", segment_id=str(catalogue.segment_id))
    assert "0 new coupon(s)" in catalogue.client.get(again.headers["location"]).text

    wide = catalogue.post(f"offers/{offer.id}/edit", **{**typed, "tenant_wide": "on"})
    assert wide.status_code == 303
    assert "all programs" in row(
        catalogue.client.get(f"{catalogue.base}/offers").text, "data-offer", offer.id or 0
    )
    assert catalogue.post(f"offers/{offer.id}/archive").status_code == 303
    refused = catalogue.post(f"offers/{offer.id}/assign", segment_id=str(catalogue.segment_id))
    assert refused.status_code == 409 and "is archived: it can no longer be assigned" in unescape(
        refused.text
    )


def test_offer_form_problems_are_shown_by_their_inputs(catalogue: Catalogue) -> None:
    answer = catalogue.post("offers/new", name="Spring", code_prefix="SP-1", max_uses="")
    assert answer.status_code == 422
    assert errors_for(answer.text, "code_prefix") == ["Letters and digits only."]
    assert errors_for(answer.text, "max_uses") == ["Required."]
    assert catalogue.post("offers/new", name="Spring", max_uses="1").status_code == 303
    with catalogue.session() as session:
        (offer,) = session.exec(select(Offer)).all()
    nowhere = catalogue.post(f"offers/{offer.id}/assign", segment_id="")
    assert nowhere.status_code == 409 and "Choose the segment" in nowhere.text
    assert audited("loyalty.offer.assign") == []


# --- navigation and roles ----------------------------------------------------------------------------
def test_the_program_page_links_to_its_catalogue(catalogue: Catalogue) -> None:
    page = catalogue.client.get(catalogue.base)
    assert page.status_code == 200
    for part in ("rewards", "challenges", "offers"):
        assert f'href="{catalogue.base}/{part}"' in page.text


def test_an_analyst_sees_the_catalogue_but_cannot_change_it(catalogue: Catalogue) -> None:
    assert catalogue.post("rewards/new", name="Mug", cost="50").status_code == 303
    with catalogue.installation.client() as analyst:
        login(analyst, ANALYST)
        for part in ("rewards", "challenges", "offers"):
            page = analyst.get(f"{catalogue.base}/{part}")
            assert page.status_code == 200 and "button primary" not in page.text, part
            assert analyst.get(f"{catalogue.base}/{part}/new").status_code == 403
            assert catalogue.post(f"{part}/new", analyst, name="X").status_code == 403
        listing = analyst.get(f"{catalogue.base}/rewards").text
        assert "Mug" in listing and "/edit" not in listing and "/archive" not in listing
        assert catalogue.post("rewards/1/archive", analyst).status_code == 403
