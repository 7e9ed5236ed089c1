"""The Loyalty card of the 360 view and the counter's actions on it, through the real pages (CSRF, roles, HTMX).

A shop with a program ("Club": Silver from 100 qualifying points, Gold from 500), two rewards and
three customers: Ann (a member with 300 points), Bob and Cid (not members). A marketer acts as the
agent at the counter; an analyst may only look. What the card shows is checked against the
ledger and the tables the services wrote.
"""

from __future__ import annotations

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
from core.loyalty.models import (
    EntryKind,
    LoyaltyMember,
    LoyaltyProgram,
    Redemption,
    RedemptionStatus,
    Reward,
    Tier,
)
from core.loyalty.offers import OfferIn, assign, create_offer
from core.loyalty.rewards import RewardIn, create_reward
from core.profiles.jobs import process_events
from core.profiles.service import find_by_identifier
from core.tenancy.members import put_member
from core.tenancy.tenants import get_tenant
from tests.support import PASSWORD, csrf_of, login

TENANT = "shop"
AGENT, ANALYST = "mia@shop.test", "ana@shop.test"


@dataclass
class Counter:
    """The shop, its program and rewards, the customers' profile ids, and the agent's browser."""

    installation: Any
    client: TestClient
    database: str
    program_id: int
    people: dict[str, str]
    coffee: int
    weekend: int

    def session(self) -> Session:
        """A session on the tenant's database."""
        return Session(tenant_engine(self.database), expire_on_commit=False)

    def page(self, name: str, client: TestClient | None = None) -> str:
        """The 360 view of a customer."""
        answer = (client or self.client).get(f"/t/{TENANT}/profiles/{self.people[name]}")
        assert answer.status_code == 200, answer.text
        return answer.text

    def act(self, name: str, action: str, client: TestClient | None = None, **form: str) -> Any:
        """Post one of the card's actions as HTMX does (the CSRF token in the header)."""
        client = client or self.client
        headers = {"HX-Request": "true", "X-CSRF-Token": csrf_of(client, f"/t/{TENANT}/profiles")}
        return client.post(
            f"/t/{TENANT}/profiles/{self.people[name]}/loyalty/{action}", data=form, headers=headers
        )

    def balance(self, name: str) -> int:
        """The member's balance, checked against the sum of their ledger."""
        with self.session() as session:
            member = session.get(LoyaltyMember, (self.program_id, self.people[name]))
            assert member is not None
            assert (
                member.balance == ledger.ledger_sums(session, self.program_id, self.people[name])["balance"]
            )
            return member.balance


def shown_balance(html: str) -> str:
    """The balance the card shows."""
    found = re.search(r"data-balance>([^<]*)<", html)
    assert found, "the card shows a balance"
    return found.group(1)


def flash(html: str) -> str:
    """What the card says the last action did, or why not."""
    found = re.search(r'data-flash="(?:ok|error)">([^<]*)<', html)
    assert found, "the card says what happened"
    return unescape(found.group(1))


def audited(action: str) -> list[AuditEntry]:
    """The audit entries of one action, oldest first."""
    with control_session() as control:
        query = select(AuditEntry).where(AuditEntry.action == action).order_by(col(AuditEntry.id))
        return list(control.exec(query))


@pytest.fixture
def counter(installation) -> Iterator[Counter]:
    """The shop on each backend: Ann holds 300 points (Silver); the agent is signed in."""
    created = installation.tenant(TENANT)
    with control_session() as control:
        tenant = get_tenant(control, TENANT)
        for email, role in ((AGENT, "marketer"), (ANALYST, "analyst")):
            put_member(control, tenant, email=email, role=role, password=PASSWORD, actor="test")
        control.commit()
    events = [{"type": "identify", "userId": n, "messageId": f"id-{n}", "traits": {"first_name": n.title()}}
              for n in ("ann", "bob", "cid")]  # fmt: skip
    with Session(tenant_engine(created.tenant.database), expire_on_commit=False) as session:
        assert not accept(session, TENANT, events).rejected
        process_events(TENANT, {})
        people = {n: find_by_identifier(session, "user_id", n).id for n in ("ann", "bob", "cid")}
        program = LoyaltyProgram(key="club", name="Club")
        session.add(program)
        session.commit()
        assert program.id is not None
        session.add_all([Tier(program_id=program.id, name="Silver", threshold=100),
                         Tier(program_id=program.id, name="Gold", threshold=500)])  # fmt: skip
        session.commit()
        posting = Posting(people["ann"], 300, EntryKind.adjust, key="test:ann", qualifying=300, actor="till@shop.test",
                          reason="Welcome gift")  # fmt: skip
        ledger.post(session, program, [posting])
        coffee = create_reward(session, program.id, RewardIn(name="Free coffee", cost=100, stock=5, voucher_days=30),
                               "test")  # fmt: skip
        weekend = create_reward(session, program.id, RewardIn(name="Weekend away", cost=5000), "test")
        session.commit()
        assert coffee.id is not None and weekend.id is not None
        with installation.client() as client:
            login(client, AGENT)
            yield Counter(
                installation, client, created.tenant.database, program.id, people, coffee.id, weekend.id
            )


# --- what the card shows ---------------------------------------------------------------------------
def test_the_card_shows_a_members_balance_tier_progress_and_ledger(counter: Counter) -> None:
    html = counter.page("ann")
    card = html[html.index('id="loyalty"') :]
    assert "<h2>Loyalty</h2>" in card
    assert shown_balance(card) == "300 points"
    assert re.search(r"data-tier>Silver<", card)
    assert '<progress max="100" value="60"' in card  # 300 of the 500 qualifying points Gold needs
    assert "200 more to <strong>Gold</strong>" in card
    assert (
        "Free coffee" in card and "Weekend away" in card
    )  # the next reward, and the catalogue to redeem from
    row = re.search(r'<tr data-entry="\d+">(.*?)</tr>', card, re.S)
    assert (
        row
        and "+300" in row.group(1)
        and "Welcome gift" in row.group(1)
        and "by till@shop.test" in row.group(1)
    )
    code = re.search(r"data-referral-code>([A-Z0-9]+)<", card)
    assert code and len(code.group(1)) == 8


def test_a_profile_in_no_program_sees_that_it_is_not_a_member_and_the_page_works(counter: Counter) -> None:
    html = counter.page("bob")
    assert "Not a member of Club." in html
    assert "data-balance" not in html and 'data-ledger="' not in html


def test_older_ledger_entries_come_page_by_page(counter: Counter) -> None:
    with counter.session() as session:
        program = session.get(LoyaltyProgram, counter.program_id)
        assert program is not None
        postings = [Posting(counter.people["ann"], i, EntryKind.adjust, key=f"test:more:{i}", reason=f"gift {i}")
                    for i in range(1, 26)]  # fmt: skip
        ledger.post(session, program, postings)
        session.commit()
    html = counter.page("ann")
    assert len(re.findall(r'<tr data-entry="', html)) == 20  # the 25 gifts, newest first, then the first 300
    older = re.search(r'hx-get="([^"]+/ledger\?before=\d+)"', html)
    assert older and "gift 25" in html and "gift 5<" not in html
    rest = counter.client.get(unescape(older.group(1)), headers={"HX-Request": "true"})
    assert rest.status_code == 200
    assert len(re.findall(r'<tr data-entry="', rest.text)) == 6 and "Welcome gift" in rest.text
    assert "ledger?before" not in rest.text  # nothing older


# --- the counter's actions --------------------------------------------------------------------------
def test_an_agent_redeems_a_reward_and_sees_the_voucher_code_and_the_new_balance(counter: Counter) -> None:
    answer = counter.act("ann", f"{counter.program_id}/redeem", reward_id=str(counter.coffee), key="k1")
    assert answer.status_code == 200, answer.text
    with counter.session() as session:
        (voucher,) = session.exec(select(Redemption)).all()
        reward = session.get(Reward, counter.coffee)
        assert reward is not None and (reward.stock, reward.issued) == (4, 1)
    assert voucher.actor == AGENT and voucher.profile_id == counter.people["ann"]
    assert flash(answer.text) == f"Redeemed Free coffee: voucher {voucher.code}. New balance: 200 points."
    assert shown_balance(answer.text) == "200 points" and counter.balance("ann") == 200
    assert f'data-voucher="{voucher.code}"' in answer.text
    assert "Reward “Free coffee” · voucher " + voucher.code in unescape(answer.text)  # the ledger's new entry
    (entry,) = audited("loyalty.redeem")
    assert entry.target == f"profile {counter.people['ann']}" and entry.detail["code"] == voucher.code

    again = counter.act("ann", f"{counter.program_id}/redeem", reward_id=str(counter.coffee), key="k1")
    assert again.status_code == 200 and counter.balance("ann") == 200  # a double submit redeems once

    used = counter.act("ann", "codes/use", code=voucher.code.lower())
    assert used.status_code == 200 and flash(used.text) == f"Voucher {voucher.code} used."
    assert [e.detail["code"] for e in audited("loyalty.voucher.use")] == [voucher.code]
    twice = counter.act("ann", "codes/use", code=voucher.code)
    assert twice.status_code == 409 and "was already used" in flash(twice.text)


def test_an_unused_voucher_is_cancelled_and_its_points_come_back(counter: Counter) -> None:
    counter.act("ann", f"{counter.program_id}/redeem", reward_id=str(counter.coffee))
    with counter.session() as session:
        (voucher,) = session.exec(select(Redemption)).all()
    answer = counter.act("ann", f"vouchers/{voucher.id}/cancel")
    assert answer.status_code == 200
    assert flash(answer.text) == f"Voucher {voucher.code} cancelled: 100 points back."
    assert shown_balance(answer.text) == "300 points" and counter.balance("ann") == 300
    with counter.session() as session:
        cancelled = session.get(Redemption, voucher.id)
        assert cancelled is not None and cancelled.status == RedemptionStatus.cancelled
    (entry,) = audited("loyalty.redemption.cancel")
    assert entry.detail["code"] == voucher.code and entry.actor == AGENT
    assert counter.act("bob", f"vouchers/{voucher.id}/cancel").status_code == 404  # not Bob's voucher


def test_a_redemption_refused_for_lack_of_points_says_why_and_changes_nothing(counter: Counter) -> None:
    html = counter.page("ann")
    assert "Weekend away — 5,000 points (not enough points)</option>" in html
    answer = counter.act("ann", f"{counter.program_id}/redeem", reward_id=str(counter.weekend))
    assert answer.status_code == 409
    assert flash(answer.text) == "Not redeemed: Reward 'Weekend away' costs 5000 points; the balance is 300."
    assert shown_balance(answer.text) == "300 points" and counter.balance("ann") == 300
    with counter.session() as session:
        assert session.exec(select(Redemption)).all() == []
        reward = session.get(Reward, counter.weekend)
        assert reward is not None and reward.issued == 0
    assert audited("loyalty.redeem") == []
    none = counter.act("ann", f"{counter.program_id}/redeem", reward_id="")
    assert none.status_code == 422 and flash(none.text) == "Choose the reward to redeem."
    outsider = counter.act("bob", f"{counter.program_id}/redeem", reward_id=str(counter.coffee))
    assert outsider.status_code == 409 and "not a member of 'Club'" in flash(outsider.text)


def test_a_manual_adjustment_needs_a_reason_and_shows_who_made_it(counter: Counter) -> None:
    blank = counter.act("ann", f"{counter.program_id}/adjust", points="50", reason="  ")
    assert blank.status_code == 422 and flash(blank.text) == "Say why: an adjustment needs a reason."
    assert counter.balance("ann") == 300 and audited("loyalty.adjust") == []
    wrong = counter.act("ann", f"{counter.program_id}/adjust", points="fifty", reason="Goodwill")
    assert wrong.status_code == 422 and "whole number" in flash(wrong.text)

    added = counter.act("ann", f"{counter.program_id}/adjust", points="50", reason="Goodwill: late delivery")
    assert added.status_code == 200 and flash(added.text) == "Added 50 points. New balance: 350 points."
    row = re.search(r'<tr data-entry="\d+">(.*?)</tr>', added.text, re.S)  # the newest entry comes first
    assert row and "+50" in row.group(1) and "Goodwill: late delivery" in row.group(1)
    assert f"by {AGENT}" in row.group(1)
    (entry,) = audited("loyalty.adjust")
    assert entry.actor == AGENT and entry.detail == {"program_id": counter.program_id, "points": 50,
                                                     "reason": "Goodwill: late delivery"}  # fmt: skip

    too_much = counter.act("ann", f"{counter.program_id}/adjust", points="-1000", reason="Mistake")
    assert too_much.status_code == 409 and "1000 cannot be taken" in flash(too_much.text)
    taken = counter.act("ann", f"{counter.program_id}/adjust", points="-20", reason="Mistake")
    assert flash(taken.text) == "Took 20 points. New balance: 330 points." and counter.balance("ann") == 330

    joined = counter.act(
        "cid", f"{counter.program_id}/adjust", points="10", reason="Welcome"
    )  # makes a member
    assert joined.status_code == 200 and shown_balance(joined.text) == "10 points"


def test_a_referral_code_and_a_coupon_at_the_counter(counter: Counter) -> None:
    with counter.session() as session:
        member = session.get(LoyaltyMember, (counter.program_id, counter.people["ann"]))
        assert member is not None
        offer = create_offer(
            session, OfferIn(name="Spring 20%", value="20% off", code_prefix="SPR", max_uses=2), "t"
        )
        assert offer.id is not None
        (coupon,) = assign(session, offer.id, [counter.people["bob"]], "test")
        session.commit()
    applied = counter.act("bob", f"{counter.program_id}/referral", code=member.referral_code.lower())
    assert applied.status_code == 200 and flash(applied.text).startswith(
        f"Referral code {member.referral_code}"
    )
    assert f"Came with the referral code <code>{member.referral_code}</code>" in applied.text
    assert 'data-action="referral"' not in applied.text  # a customer is referred once
    own = counter.act("ann", f"{counter.program_id}/referral", code=member.referral_code)
    assert own.status_code == 409 and "cannot refer themselves" in flash(own.text)
    assert "1 referred" in counter.page("ann")

    assert f'data-coupon="{coupon.code}"' in applied.text
    used = counter.act("bob", "codes/use", code=coupon.code)
    assert used.status_code == 200 and flash(used.text) == f"Coupon {coupon.code} used (1 use(s) left)."
    elsewhere = counter.act("ann", "codes/use", code=coupon.code)  # Bob's coupon, on Ann's page
    assert elsewhere.status_code == 422 and "no voucher or coupon" in flash(elsewhere.text)
    assert [e.detail["code"] for e in audited("loyalty.coupon.use")] == [coupon.code]


# --- roles ----------------------------------------------------------------------------------------------
def test_an_analyst_sees_the_card_without_actions_and_cannot_post_them(counter: Counter) -> None:
    with counter.installation.client() as analyst:
        login(analyst, ANALYST)
        html = counter.page("ann", analyst)
        assert shown_balance(html) == "300 points" and "Welcome gift" in html
        assert (
            "data-action=" not in html and ">Redeem</button>" not in html and ">Cancel</button>" not in html
        )
        program = counter.program_id
        for action, form in ((f"{program}/redeem", {"reward_id": str(counter.coffee)}),
                             (f"{program}/adjust", {"points": "5", "reason": "x"}), ("codes/use", {"code": "X"}),
                             (f"{program}/referral", {"code": "X"}), ("vouchers/1/cancel", {})):  # fmt: skip
            assert counter.act("ann", action, analyst, **form).status_code == 403, action
    assert counter.balance("ann") == 300
