"""The wallet pass steps: ``update_pass`` has a profile's live passes re-issued now, ``notify_on_pass``
puts a personalized message on their lock screens; a profile without a live pass (or missing a value
the message uses) is skipped with the reason and goes on. The pass machinery itself (re-issuing,
pushes) is tested with the passes: here a pass is a row, and "marked" means a ``pass_refresh`` row
and a queued ``core.passes.refresh`` job. Profiles enter through the API: processing an event marks
the passes of the profile it changed, which would hide what the step does."""

from __future__ import annotations

import secrets

import pytest
from sqlmodel import col, select

from core.journeys import service
from core.journeys.definition import DefinitionInvalid
from core.journeys.models import Journey
from core.passes.marking import REFRESH
from core.passes.models import PassRefresh, PassState, PassTemplate, WalletPass
from core.queue.models import Job
from tests.journeys.conftest import customers, definition, entry_of, make_journey, path
from tests.support import bearer

API = {"type": "api"}
EXIT = {"type": "exit"}


def pass_template(shop, key: str = "card") -> PassTemplate:
    """A pass template (its design is the pass machinery's business)."""
    template = PassTemplate(key=key, name=key.title(), channel="wallet_apple",
                            design={"organization_name": "Shop", "description": "Card"})  # fmt: skip
    shop.session.add(template)
    shop.session.commit()
    return template


def wallet_pass(
    shop, template: PassTemplate, profile_id: str, state: PassState = PassState.active
) -> WalletPass:
    """A pass of ``template`` issued to the profile."""
    issued = WalletPass(serial=secrets.token_hex(8), channel="wallet_apple", template_id=template.id,
                        profile_id=profile_id, authentication_token=secrets.token_hex(16), state=state)  # fmt: skip
    shop.session.add(issued)
    shop.session.commit()
    return issued


def enter(shop, journey: Journey, *profile_ids: str) -> None:
    """Enter the profiles into the (API-triggered) journey, committed."""
    tenant, scope = shop.tenant, shop.scope()
    for profile_id in profile_ids:
        service.enter(shop.session, tenant, scope, journey, profile_id)
    shop.session.commit()


def marked(shop) -> list[str]:
    """The profiles marked for a pass refresh."""
    shop.session.expire_all()
    return sorted(r.profile_id for r in shop.session.exec(select(PassRefresh)))


def refresh_jobs(shop) -> list[Job]:
    return list(shop.session.exec(select(Job).where(Job.kind == REFRESH).order_by(col(Job.id))))


def test_an_update_pass_step_refreshes_the_live_passes_of_the_template_and_skips_other_profiles(shop) -> None:
    ada, bob, cid, dan = customers(shop, "ada", "bob", "cid", "dan")
    card, coupon = pass_template(shop, "card"), pass_template(shop, "coupon")
    wallet_pass(shop, card, ada)
    wallet_pass(shop, card, bob, PassState.voided)  # revoked: not live
    wallet_pass(shop, coupon, cid)  # another template's pass
    spec = definition(API, {"s1": {"type": "update_pass", "template_id": card.id, "next": "s2"}, "s2": EXIT})
    journey = make_journey(shop, spec)
    enter(shop, journey, ada, bob, cid, dan)

    assert path(shop, entry_of(shop, journey.id, ada)) == [("s1", "updated"), ("s2", "exit")]
    for other in (bob, cid, dan):
        assert path(shop, entry_of(shop, journey.id, other)) == [("s1", "skipped:no_pass"), ("s2", "exit")]
    assert marked(shop) == [ada]
    assert len(refresh_jobs(shop)) == 1


def test_an_update_pass_step_without_a_template_refreshes_every_live_pass(sqlite_shop) -> None:
    shop = sqlite_shop
    ada, bob = customers(shop, "ada", "bob")
    wallet_pass(shop, pass_template(shop, "coupon"), ada)
    journey = make_journey(shop, definition(API, {"s1": {"type": "update_pass", "template_id": None}}))
    enter(shop, journey, ada, bob)

    assert path(shop, entry_of(shop, journey.id, ada)) == [("s1", "updated")]
    assert path(shop, entry_of(shop, journey.id, bob)) == [("s1", "skipped:no_pass")]
    assert marked(shop) == [ada] and len(refresh_jobs(shop)) == 1


def test_a_notify_on_pass_step_puts_the_personalized_message_on_the_pass(shop) -> None:
    (ada,) = customers(shop, "ada", tier="gold")
    bob, cid = customers(shop, "bob", "cid")  # no tier
    card = pass_template(shop)
    for profile_id in (ada, bob):
        wallet_pass(shop, card, profile_id)
    step = {"type": "notify_on_pass", "template_id": card.id, "next": "s2",
            "message": "Hi {{ traits.first_name }}, welcome to {{ traits.tier }}"}  # fmt: skip
    journey = make_journey(shop, definition(API, {"s1": step, "s2": EXIT}))
    enter(shop, journey, ada, bob, cid)

    notices = {p.profile_id: p.notice for p in shop.session.exec(select(WalletPass))}
    assert notices == {ada: "Hi Ada, welcome to gold", bob: None}  # a missing value puts no broken notice
    assert path(shop, entry_of(shop, journey.id, ada)) == [("s1", "notified"), ("s2", "exit")]
    assert path(shop, entry_of(shop, journey.id, bob)) == [("s1", "skipped:missing_value"), ("s2", "exit")]
    assert path(shop, entry_of(shop, journey.id, cid)) == [("s1", "skipped:no_pass"), ("s2", "exit")]
    assert marked(shop) == [ada]  # re-issued so that its devices show the notice
    assert len(refresh_jobs(shop)) == 1


def test_pass_steps_must_name_an_existing_template_and_a_valid_message(sqlite_shop) -> None:
    shop = sqlite_shop
    archived = pass_template(shop, "old")
    archived.archived = True  # its passes are still in wallets: they may still be updated
    shop.session.add(archived)
    shop.session.commit()
    spec = definition(API, {
        "s1": {"type": "update_pass", "template_id": 999, "next": "s2"},
        "s2": {"type": "notify_on_pass", "template_id": 998, "message": "Hi {{ traits.first_name }", "next": "s3"},
        "s3": {"type": "notify_on_pass", "message": "Your {{ event.product }} ships", "next": "s4"},
        "s4": {"type": "update_pass", "template_id": archived.id},
    })  # fmt: skip
    with pytest.raises(DefinitionInvalid) as refused:
        make_journey(shop, spec)
    assert dict(refused.value.problems) == {
        "steps.s1.template_id": "there is no pass template 999",
        "steps.s2.template_id": "there is no pass template 998",
        "steps.s2.message": "line 1: unexpected '}'",
        "steps.s3.message": "a pass notice cannot read event: use traits, computed, loyalty or profile",
    }

    blank = definition(API, {"s1": {"type": "notify_on_pass", "template_id": None, "message": "  "}})
    with pytest.raises(DefinitionInvalid) as refused:
        make_journey(shop, blank)
    assert dict(refused.value.problems) == {
        "steps.s1.message": "write the message the pass shows, e.g. Hi {{ traits.first_name }}"
    }


def test_the_journeys_api_takes_pass_steps_and_names_an_unknown_template(sqlite_shop) -> None:
    shop = sqlite_shop
    card = pass_template(shop)
    steps = {"s1": {"type": "update_pass", "template_id": card.id, "next": "s2"},
             "s2": {"type": "notify_on_pass", "template_id": None, "message": "Hi {{ traits.first_name }}"}}  # fmt: skip
    auth = bearer(shop.token)
    with shop.installation.client() as client:
        created = client.post(
            "/api/v1/journeys", headers=auth, json={"name": "Cards", "definition": definition(API, steps)}
        )
        assert created.status_code == 201, created.text
        assert created.json()["definition"]["steps"] == steps
        unknown = {**steps, "s1": {**steps["s1"], "template_id": 999}}
        refused = client.post(
            "/api/v1/journeys", headers=auth, json={"name": "Gone", "definition": definition(API, unknown)}
        )
        assert refused.status_code == 422
        assert refused.json()["problems"] == [
            {"path": "steps.s1.template_id", "message": "there is no pass template 999"}
        ]
