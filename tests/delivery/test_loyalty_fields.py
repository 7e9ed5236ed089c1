"""Messages read a member's loyalty standing: ``{{ loyalty.balance }}`` previews and sends with the
member's own figures, and a profile that is no member lacks the value (caught before launch, never
sent as a blank)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.campaigns import service as campaigns
from core.db.engines import control_session
from core.delivery.recipients import load_recipients
from core.loyalty.models import LoyaltyMember, LoyaltyProgram, Tier
from core.loyalty.offers import OfferIn, assign, create_offer
from core.plugins import get_host
from core.tenancy.plugin_settings import channel_context
from tests.delivery.conftest import CHANNEL, content

BODY = (
    "{{ traits.first_name }}, you have {{ loyalty.balance }} {{ loyalty.currency }} ({{ loyalty.club.tier }})"
)


def _club_member(shop, profile_id: str, balance: int) -> None:
    program = LoyaltyProgram(key="club", name="Club", period_anchor=datetime(2026, 1, 1, tzinfo=UTC))
    shop.session.add(program)
    shop.session.flush()
    assert program.id is not None
    gold = Tier(program_id=program.id, name="Gold", threshold=500)
    shop.session.add(gold)
    shop.session.flush()
    shop.session.add(LoyaltyMember(program_id=program.id, profile_id=profile_id, balance=balance, earned=balance,
                                   qualifying=600, tier_id=gold.id, referral_code="ANN0"))  # fmt: skip
    shop.session.commit()


def test_a_member_gets_their_balance_and_a_non_member_is_held_back_as_missing(shop) -> None:
    member, other = shop.customers(2)
    _club_member(shop, member, 120)
    people = load_recipients(shop.session.connection(), [member, other], CHANNEL, "email")
    assert people[member].context()["loyalty"]["club"]["balance"] == 120
    assert people[other].context()["loyalty"] == {}

    data = campaigns.CampaignIn(
        name="Points", segment_id=shop.segment(), channel=CHANNEL, content=content(BODY)
    )
    campaign = campaigns.create_campaign(shop.session, shop.tenant, shop.scope(), data, "marketer")
    shop.session.commit()
    with control_session() as control:
        ctx = channel_context(control, shop.tenant, get_host(), CHANNEL)
    shown = campaigns.preview(shop.session, shop.scope(), ctx, campaign, member)
    assert shown.fields["body"] == "Ann0, you have 120 points (Gold)"

    with pytest.raises(campaigns.MissingValues) as refused:
        campaigns.launch(shop.session, shop.tenant, shop.scope(), campaign, "marketer")
    assert refused.value.missing == {"loyalty.balance": [other]}
    campaigns.launch(shop.session, shop.tenant, shop.scope(), campaign, "marketer", skip_missing=True)
    shop.session.commit()
    shop.run_jobs()
    assert [m.body for m in shop.provider.messages] == ["Ann0, you have 120 points (Gold)"]


def test_a_profiles_usable_coupons_are_loyalty_coupons_soonest_first(shop) -> None:
    ann, bob = shop.customers(2)
    gift = create_offer(
        shop.session, OfferIn(name="Welcome gift", value="a tote bag", code_prefix="GIFT"), "m"
    )
    shop.session.commit()
    assert gift.id is not None
    [coupon] = assign(shop.session, gift.id, [ann], "marketer")
    shop.session.commit()
    people = load_recipients(shop.session.connection(), [ann, bob], CHANNEL, "email")
    [shown] = people[ann].context()["loyalty"]["coupons"]
    assert (shown["code"], shown["offer"], shown["value"], shown["uses_left"]) == (
        coupon.code, "Welcome gift", "a tote bag", 1
    )  # fmt: skip
    assert "coupons" not in people[bob].context()["loyalty"]  # nothing to show: no empty list to loop over
