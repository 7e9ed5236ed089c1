"""Issuing passes: one per profile and template, the serial an identifier of the profile, a new
version only when what the pass shows changed, and revocation and expiry that void it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from core.db.engines import control_session
from core.passes import library, updates
from core.passes.issuing import Issued, issue
from core.passes.marking import mark_changed_now
from core.passes.models import PassRefresh, PassState
from core.passes.updates import expired_now, void
from core.passes.wallets import wallet_for
from core.profiles.service import find_by_identifier
from core.tenancy.models import Tenant
from core.tenancy.tenants import get_tenant
from tests.passes.shop import CHANNEL, TENANT, Shop


def _wallet():  # type: ignore[no-untyped-def]
    with control_session() as control:
        return wallet_for(get_tenant(control, TENANT), CHANNEL), get_tenant(control, TENANT)


def test_a_pass_is_issued_once_and_its_serial_names_the_profile(shop: Shop) -> None:
    ann = shop.customer("ann")
    shop.give(ann, 40)
    wallet, _ = _wallet()
    first = issue(shop.session, wallet, shop.template, [ann])[ann]
    shop.session.commit()
    assert isinstance(first, Issued) and first.new
    assert [f.value for f in first.rendered.fields if f.key == "points"] == ["40"]
    assert find_by_identifier(shop.session, "pass_serial", first.wallet_pass.serial).id == ann
    again = issue(shop.session, wallet, shop.template, [ann])[ann]
    shop.session.commit()
    assert isinstance(again, Issued) and not again.new and not again.changed
    assert again.wallet_pass.serial == first.wallet_pass.serial
    assert again.rendered.updated_at == first.rendered.updated_at  # nothing new: same Last-Modified
    assert shop.activity(first.wallet_pass.serial) == ["issued"]


def test_a_changed_balance_makes_a_new_version_that_announces_itself(shop: Shop) -> None:
    ann = shop.customer("ann")
    wallet, _ = _wallet()
    first = issue(shop.session, wallet, shop.template, [ann])[ann]
    shop.session.commit()
    shop.give(ann, 25)
    later = datetime.now(UTC) + timedelta(seconds=5)
    again = issue(shop.session, wallet, shop.template, [ann], now=later)[ann]
    shop.session.commit()
    assert isinstance(first, Issued) and isinstance(again, Issued)
    assert again.changed and again.announced == ["points"]
    assert again.rendered.updated_at > first.rendered.updated_at
    assert again.rendered.updated_at.microsecond == 0  # a whole second, as HTTP dates are
    assert shop.activity(again.wallet_pass.serial) == ["issued", "updated"]


def test_a_profile_without_a_bound_value_gets_problems_and_no_pass(shop: Shop) -> None:
    nobody = shop.customer("nobody", first_name=None)
    wallet, _ = _wallet()
    outcome = issue(shop.session, wallet, shop.template, [nobody])[nobody]
    assert isinstance(outcome, list)
    assert [(p.field, p.message) for p in outcome] == [
        ("field.name.value", "traits.first_name has no value for this profile")
    ]
    assert shop.pass_of(nobody) is None


def test_points_posted_mark_the_holder_for_a_refresh_and_the_job_reissues(shop: Shop) -> None:
    ann, bob = shop.customer("ann"), shop.customer("bob")
    wallet, _ = _wallet()
    issue(shop.session, wallet, shop.template, [ann])
    shop.session.commit()
    from core.loyalty.events import tell_plugins

    shop.give(ann, 30)
    shop.give(bob, 30)
    tell_plugins(TENANT, {ann, bob})  # what loyalty does after posting
    marked = {row.profile_id for row in shop.session.exec(select(PassRefresh))}
    assert marked == {ann}  # bob holds no pass: nothing to refresh
    shop.run_jobs()
    held = shop.pass_of(ann)
    assert held is not None and held.shown["points"] == "30"
    assert shop.session.exec(select(PassRefresh)).first() is None


def test_points_posted_while_the_refresh_renders_are_not_lost(
    postgres_shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Points posted (and the holder marked) while the refresh job renders the pass from the balance
    before: the job deletes only the mark it read, so it renders the pass again. The writer found
    the job running and queued no other, so a deleted mark would leave the pass behind."""
    shop = postgres_shop
    ann = shop.customer("ann")
    wallet, _ = _wallet()
    issue(shop.session, wallet, shop.template, [ann])
    shop.session.commit()
    shop.give(ann, 10)
    mark_changed_now(TENANT, {ann})
    render = updates.reissue_profiles
    rounds: list[list[str]] = []

    def posting_meanwhile(session: Session, tenant: Tenant, profile_ids: list[str]) -> list[Issued]:
        changed = render(session, tenant, profile_ids)
        rounds.append([issued.wallet_pass.shown["points"] for issued in changed])
        if len(rounds) == 1:  # another transaction, as the loyalty job posting a purchase's points
            shop.give(ann, 5)
            mark_changed_now(TENANT, {ann})
        return changed

    monkeypatch.setattr(updates, "reissue_profiles", posting_meanwhile)
    shop.run_jobs()
    assert rounds == [["10"], ["15"]]
    held = shop.pass_of(ann)
    assert held is not None and held.shown["points"] == "15"
    assert shop.session.exec(select(PassRefresh)).first() is None


def test_voiding_makes_a_new_void_version(shop: Shop) -> None:
    ann = shop.customer("ann")
    wallet, tenant = _wallet()
    first = issue(shop.session, wallet, shop.template, [ann])[ann]
    shop.session.commit()
    assert isinstance(first, Issued)
    void(shop.session, tenant, first.wallet_pass, "lost card", "agent@shop.test")
    shop.session.commit()
    held = shop.pass_of(ann)
    assert held is not None and held.state == PassState.voided and held.voided_at is not None
    current = issue(shop.session, wallet, shop.template, [ann])[ann]
    assert isinstance(current, Issued) and current.rendered.voided
    assert shop.activity(held.serial)[-1] == "voided"


def test_passes_past_their_expiration_date_expire(shop: Shop) -> None:
    design = {**shop.template.design, "expiration_date": "{{ traits.card_until }}"}
    template = library.save_template(shop.session, key="summer", name="Summer", channel=CHANNEL, design=design,
                                     by="test")  # fmt: skip
    soon = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    ann = shop.customer("ann", card_until=soon.isoformat())
    wallet, tenant = _wallet()
    issue(shop.session, wallet, template, [ann])
    shop.session.commit()
    assert expired_now(shop.session, tenant, datetime.now(UTC)) == []
    [ended] = expired_now(shop.session, tenant, soon + timedelta(seconds=1))
    shop.session.commit()
    assert ended.state == PassState.expired and ended.profile_id == ann
