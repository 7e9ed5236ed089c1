"""The loyalty engagement API: challenges written and run by marketers, a member's progress and
badges, referral codes read and applied; clear answers for what is invalid, unknown or refused."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from core.audit.models import AuditEntry
from core.db.engines import control_session, tenant_engine
from core.ingest.models import Event
from core.ingest.service import accept
from core.loyalty import challenges
from core.loyalty.ledger import lock_members
from core.loyalty.models import LoyaltyProgram
from core.loyalty.programs import ProgramIn, create_program
from core.loyalty.state import EventRow
from core.profiles.jobs import process_events
from core.profiles.service import find_by_identifier
from core.tenancy.keys import issue_api_token
from core.tenancy.members import put_member
from core.tenancy.tenants import get_tenant
from core.tenancy.users import get_user_by_email
from tests.support import PASSWORD, bearer

TENANT = "shop"
CHALLENGE = {"name": "Three in a month", "badge": "Regular", "event": "Order Completed", "target": 3,
             "window_days": 30, "points": 100, "where": [{"key": "revenue", "op": ">", "value": 0}]}  # fmt: skip


@dataclass
class Api:
    """A tenant with a loyalty program, a client, and the admin's bearer headers."""

    client: TestClient
    auth: dict[str, str]
    session: Session
    program_id: int

    @property
    def challenges(self) -> str:
        return f"/api/v1/loyalty/programs/{self.program_id}/challenges"

    def customer(self, user: str) -> str:
        """A customer with a user id (identified for real); their profile id."""
        assert not accept(self.session, TENANT, [{"type": "identify", "userId": user}]).rejected
        process_events(TENANT, {})
        return find_by_identifier(self.session, "user_id", user).id

    def audited(self) -> list[tuple[str, str]]:
        with control_session() as control:
            rows = control.exec(select(AuditEntry).where(col(AuditEntry.action).startswith("loyalty.")))
            return [(row.action, row.target) for row in rows]


@pytest.fixture
def api(installation: Any) -> Iterator[Api]:
    created = installation.tenant(TENANT)
    with Session(tenant_engine(created.tenant.database), expire_on_commit=False) as session:
        program = create_program(session, ProgramIn(key="club", name="Club", referrer_points=10), "test")
        session.commit()
        assert program.id is not None
        yield Api(installation.client(), bearer(created.api_token), session, program.id)


def test_a_challenge_is_created_changed_activated_and_ended_and_each_change_is_audited(api: Api) -> None:
    created = api.client.post(api.challenges, json=CHALLENGE, headers=api.auth)
    assert created.status_code == 201, created.text
    challenge = created.json()
    assert (challenge["status"], challenge["goal"], challenge["target"], challenge["activated_at"]) == (
        "draft", "events", 3, None
    )  # fmt: skip
    url = f"{api.challenges}/{challenge['id']}"

    changed = api.client.put(url, json={**CHALLENGE, "target": 4}, headers=api.auth)
    assert changed.status_code == 200 and changed.json()["target"] == 4

    active = api.client.post(f"{url}/activate", headers=api.auth)
    assert active.status_code == 200 and active.json()["status"] == "active" and active.json()["activated_at"]

    refused = api.client.put(url, json={**CHALLENGE, "target": 5}, headers=api.auth)
    assert refused.status_code == 409 and "only a draft changes" in refused.json()["detail"]

    ended = api.client.post(f"{url}/end", headers=api.auth)
    assert ended.status_code == 200 and ended.json()["status"] == "ended"
    assert api.client.post(f"{url}/end", headers=api.auth).status_code == 409

    listed = api.client.get(api.challenges, headers=api.auth).json()["challenges"]
    assert [(c["id"], c["target"], c["status"]) for c in listed] == [(challenge["id"], 4, "ended")]
    assert api.client.get(url, headers=api.auth).json()["where"] == CHALLENGE["where"]
    target = f"challenge {challenge['id']}"
    assert api.audited() == [("loyalty.challenge.create", target), ("loyalty.challenge.update", target),
                             ("loyalty.challenge.activate", target), ("loyalty.challenge.end", target)]  # fmt: skip


@pytest.mark.parametrize("installation", ["sqlite"], indirect=True)
def test_invalid_challenges_and_unknown_things_get_clear_answers(api: Api) -> None:
    bad_filter = api.client.post(
        api.challenges,
        json={**CHALLENGE, "where": [{"key": "revenue", "op": "about", "value": 1}]},
        headers=api.auth,
    )
    assert bad_filter.status_code == 422 and "where[0]" in bad_filter.json()["detail"]

    no_property = api.client.post(api.challenges, json={**CHALLENGE, "goal": "distinct"}, headers=api.auth)
    assert no_property.status_code == 422
    assert "needs the property" in no_property.json()["problems"][0]["message"]

    assert api.client.post(api.challenges, json=CHALLENGE, headers=api.auth).status_code == 201
    taken = api.client.post(api.challenges, json=CHALLENGE, headers=api.auth)
    assert taken.status_code == 409 and "already has a challenge named" in taken.json()["detail"]

    unknown_program = api.client.get("/api/v1/loyalty/programs/999/challenges", headers=api.auth)
    assert (
        unknown_program.status_code == 404 and unknown_program.json()["detail"] == "No loyalty program 999."
    )
    assert api.client.get(f"{api.challenges}/999", headers=api.auth).status_code == 404
    assert api.client.post(f"{api.challenges}/999/activate", headers=api.auth).status_code == 404
    assert api.audited() == [("loyalty.challenge.create", "challenge 1")]


@pytest.mark.parametrize("installation", ["sqlite"], indirect=True)
def test_a_members_progress_and_badges_are_read_per_program(api: Api) -> None:
    first_order = challenges.create_challenge(
        api.session,
        api.program_id,
        challenges.ChallengeIn(name="First order", badge="Newcomer", event="Order Completed"),
    )
    regular = challenges.create_challenge(api.session, api.program_id, challenges.ChallengeIn(**CHALLENGE))
    for challenge in (first_order, regular):
        assert challenge.id is not None
        challenges.activate_challenge(
            api.session, api.program_id, challenge.id, now=datetime.now(UTC) - timedelta(days=1)
        )
    api.session.commit()
    item = {"type": "track", "userId": "ann", "event": "Order Completed", "properties": {"revenue": 20},
            "messageId": "order-1"}  # fmt: skip
    assert not accept(api.session, TENANT, [item]).rejected
    process_events(TENANT, {})
    stored = api.session.exec(select(Event).where(Event.message_id == "order-1")).one()
    assert stored.id is not None and stored.profile_id is not None and stored.event is not None
    row = EventRow(
        stored.id, stored.message_id, stored.event, stored.profile_id, stored.properties, stored.timestamp
    )
    program = api.session.get(LoyaltyProgram, api.program_id)
    assert program is not None
    challenges.on_events(api.session, program, [row], lock_members(api.session, program, [row.profile_id]),
                         datetime.now(UTC))  # fmt: skip
    api.session.commit()

    answer = api.client.get(
        f"/api/v1/profiles/{row.profile_id}/loyalty/challenges",
        params={"program_id": api.program_id},
        headers=api.auth,
    )

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["badges"] == ["Newcomer"]
    assert [(c["challenge"]["name"], c["progress"], c["target"], c["completed"]) for c in body["challenges"]] == [
        ("First order", 1, 1, True), ("Three in a month", 1, 3, False)
    ]  # fmt: skip
    unknown = api.client.get("/api/v1/profiles/nobody/loyalty/challenges", params={"program_id": api.program_id},
                             headers=api.auth)  # fmt: skip
    assert unknown.status_code == 404
    assert (
        api.client.get(f"/api/v1/profiles/{row.profile_id}/loyalty/challenges", headers=api.auth).status_code
        == 422
    )


def test_a_referral_code_is_read_and_applied_once_with_reasons_for_refusals(api: Api) -> None:
    ann, bob, cat = api.customer("ann"), api.customer("bob"), api.customer("cat")
    params = {"program_id": api.program_id}
    own = api.client.get(f"/api/v1/profiles/{ann}/loyalty/referral", params=params, headers=api.auth)
    assert own.status_code == 200, own.text
    code = own.json()["code"]
    assert len(code) == 8 and own.json()["referrals"] == [] and own.json()["referred_by"] is None
    url = f"/api/v1/profiles/{bob}/loyalty/referral"

    applied = api.client.post(url, json={"program_id": api.program_id, "code": code}, headers=api.auth)

    assert applied.status_code == 201, applied.text
    assert {k: applied.json()[k] for k in ("referrer_id", "referee_id", "code", "status")} == {
        "referrer_id": ann, "referee_id": bob, "code": code, "status": "pending"
    }  # fmt: skip
    other_code = api.client.get(f"/api/v1/profiles/{cat}/loyalty/referral", params=params, headers=api.auth)
    second = api.client.post(url, json={"program_id": api.program_id, "code": other_code.json()["code"]},
                             headers=api.auth)  # fmt: skip
    assert second.status_code == 409 and "already came with the referral code" in second.json()["detail"]
    unknown = api.client.post(url, json={"program_id": api.program_id, "code": "ZZZZ2222"}, headers=api.auth)
    assert unknown.status_code == 409 and "Unknown referral code" in unknown.json()["detail"]
    self_referral = api.client.post(f"/api/v1/profiles/{ann}/loyalty/referral",
                                    json={"program_id": api.program_id, "code": code}, headers=api.auth)  # fmt: skip
    assert self_referral.status_code == 409 and "own referral code" in self_referral.json()["detail"]

    referrer = api.client.get(
        f"/api/v1/profiles/{ann}/loyalty/referral", params=params, headers=api.auth
    ).json()
    referee = api.client.get(url, params=params, headers=api.auth).json()
    assert referrer["code"] == code and [r["referee_id"] for r in referrer["referrals"]] == [bob]
    assert referee["referred_by"]["referrer_id"] == ann
    assert api.audited() == [("loyalty.referral.apply", f"profile {bob}")]
    missing = api.client.post("/api/v1/profiles/nobody/loyalty/referral",
                              json={"program_id": api.program_id, "code": code}, headers=api.auth)  # fmt: skip
    assert missing.status_code == 404


@pytest.mark.parametrize("installation", ["sqlite"], indirect=True)
def test_an_analyst_reads_but_changes_nothing(api: Api) -> None:
    with control_session() as control:
        tenant = get_tenant(control, TENANT)
        put_member(control, tenant, email="ana@shop.test", role="analyst", password=PASSWORD, actor="test")
        user = get_user_by_email(control, "ana@shop.test")
        assert user is not None
        _, token = issue_api_token(control, tenant, user)
        control.commit()
    analyst = bearer(token)
    bob = api.customer("bob")

    assert api.client.get(api.challenges, headers=analyst).status_code == 200
    assert api.client.post(api.challenges, json=CHALLENGE, headers=analyst).status_code == 403
    referral = api.client.post(f"/api/v1/profiles/{bob}/loyalty/referral",
                               json={"program_id": api.program_id, "code": "ABCDEFGH"}, headers=analyst)  # fmt: skip
    assert referral.status_code == 403
    assert api.client.get(api.challenges, headers=api.auth).json()["challenges"] == []
