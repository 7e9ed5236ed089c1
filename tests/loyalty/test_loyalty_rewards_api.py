"""The rewards and offers API as a till, a shop or a script uses it: the catalogue, redeeming and
using vouchers, assigning and using coupons; refusals answered 409 with their code, unknown
things 404, bad input 422; reads need read_data and everything else write_marketing."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from core.audit.models import AuditEntry
from core.db.engines import control_session
from core.ingest.service import accept
from core.profiles.jobs import process_events
from core.profiles.service import find_by_identifier, get_profile
from core.segments.jobs import refresh_segments
from core.segments.service import create_segment
from core.tenancy.keys import issue_api_token
from core.tenancy.members import put_member
from core.tenancy.tenants import get_tenant
from core.tenancy.users import get_user_by_email
from tests.loyalty.club import TENANT, Club, club, sqlite_club
from tests.support import PASSWORD, bearer

__all__ = ["club", "sqlite_club"]


def ingest(club: Club, *events: dict[str, Any]) -> None:
    """Events through the real ingestion and processing."""
    assert not accept(club.session, TENANT, list(events)).rejected
    process_events(TENANT, {})
    club.session.expire_all()


def customer(club: Club, user: str) -> str:
    """A customer with this user id; their profile id."""
    ingest(club, {"type": "identify", "userId": user, "traits": {"email": f"{user}@example.com"}})
    return find_by_identifier(club.session, "user_id", user).id


def audited() -> list[str]:
    """The loyalty actions in the audit log, oldest first."""
    with control_session() as control:
        query = (
            select(AuditEntry).where(col(AuditEntry.action).like("loyalty.%")).order_by(col(AuditEntry.id))
        )
        return [entry.action for entry in control.exec(query)]


def token_of(role: str) -> str:
    """An API token of a member of the shop with ``role``."""
    with control_session() as control:
        tenant = get_tenant(control, TENANT)
        email = f"{role}@shop.test"
        put_member(control, tenant, email=email, role=role, password=PASSWORD, actor="test")
        user = get_user_by_email(control, email)
        assert user is not None
        _, plain = issue_api_token(control, tenant, user, name=role)
        control.commit()
    return plain


def test_a_reward_is_redeemed_its_voucher_used_and_another_cancelled(club: Club) -> None:
    ann, bob = customer(club, "ann"), customer(club, "bob")
    club.give(ann, 500)
    auth = bearer(club.token)
    base = f"/api/v1/loyalty/programs/{club.program_id}/rewards"
    with club.installation.client() as client:
        created = client.post(base, headers=auth, json={"name": "Free coffee", "cost": 200, "stock": 3})
        assert created.status_code == 201, created.text
        coffee = created.json()
        assert (coffee["cost"], coffee["stock"], coffee["issued"], coffee["status"]) == (200, 3, 0, "active")
        assert client.post(base, headers=auth, json={"name": "Free coffee", "cost": 5}).status_code == 409
        backwards = client.post(base, headers=auth, json={
            "name": "Tea", "cost": 5, "valid_from": "2026-05-01T00:00:00Z", "valid_until": "2026-04-01T00:00:00Z"})  # fmt: skip
        assert backwards.status_code == 422 and "valid_until" in backwards.json()["detail"]
        assert client.post(base, headers=auth, json={"name": "Tea", "cost": 0}).status_code == 422
        assert (
            client.post(
                "/api/v1/loyalty/programs/99/rewards", headers=auth, json={"name": "Tea", "cost": 5}
            ).status_code
            == 404
        )
        changed = client.put(f"{base}/{coffee['id']}", headers=auth,
                             json={"name": "Free coffee", "cost": 200, "stock": 3, "voucher_days": 30})  # fmt: skip
        assert changed.status_code == 200 and changed.json()["voucher_days"] == 30
        assert client.get(f"{base}/{coffee['id']}", headers=auth).json()["name"] == "Free coffee"
        assert client.get(f"{base}/999", headers=auth).status_code == 404

        redemptions = f"/api/v1/profiles/{ann}/loyalty/redemptions"
        ask = {"program_id": club.program_id, "reward_id": coffee["id"], "idempotency_key": "pos-1"}
        first = client.post(redemptions, headers=auth, json=ask)
        assert first.status_code == 201, first.text
        voucher = first.json()
        assert (voucher["cost"], voucher["balance"], voucher["status"], voucher["reward"]) == (
            200, 300, "issued", "Free coffee")  # fmt: skip
        assert voucher["code"].startswith("FREECO-") and voucher["expires_at"]
        repeated = client.post(redemptions, headers=auth, json=ask).json()
        assert (repeated["code"], repeated["balance"]) == (voucher["code"], 300)  # nothing taken twice
        second = client.post(redemptions, headers=auth, json={**ask, "idempotency_key": "pos-2"}).json()
        assert second["balance"] == 100

        poor = client.post(redemptions, headers=auth, json={**ask, "idempotency_key": None})
        assert poor.status_code == 409 and poor.json()["code"] == "insufficient_points"
        assert "the balance is 100" in poor.json()["detail"]
        club.give(bob, 1_000)
        for status in (201, 409):  # the last unit, then none
            sold_out = client.post(f"/api/v1/profiles/{bob}/loyalty/redemptions", headers=auth,
                                   json={"program_id": club.program_id, "reward_id": coffee["id"]})  # fmt: skip
            assert sold_out.status_code == status
        assert sold_out.status_code == 409 and sold_out.json()["code"] == "out_of_stock"
        assert (
            client.post("/api/v1/profiles/nobody/loyalty/redemptions", headers=auth, json=ask).status_code
            == 404
        )
        unknown_reward = client.post(redemptions, headers=auth, json={**ask, "reward_id": 999})
        assert unknown_reward.status_code == 404

        listed = client.get(redemptions, headers=auth).json()
        assert [r["code"] for r in listed["redemptions"]] == [second["code"], voucher["code"]]

        use = f"/api/v1/loyalty/vouchers/{voucher['code']}/use"
        used = client.post(use, headers=auth, json={"order_id": "A-17"})
        assert used.status_code == 200 and used.json()["status"] == "used"
        again = client.post(use, headers=auth)
        assert again.status_code == 409 and again.json()["code"] == "used"
        assert client.post("/api/v1/loyalty/vouchers/NOPE-1234/use", headers=auth).status_code == 404

        cancelled = client.post(f"/api/v1/loyalty/redemptions/{second['id']}/cancel", headers=auth)
        assert cancelled.status_code == 200
        assert (cancelled.json()["status"], cancelled.json()["balance"]) == ("cancelled", 300)
        twice = client.post(f"/api/v1/loyalty/redemptions/{second['id']}/cancel", headers=auth)
        assert twice.status_code == 409 and twice.json()["code"] == "cancelled"
        assert client.post("/api/v1/loyalty/redemptions/999/cancel", headers=auth).status_code == 404
        assert client.get(f"{base}/{coffee['id']}", headers=auth).json()["stock"] == 1  # one unit came back

        archived = client.post(f"{base}/{coffee['id']}/archive", headers=auth)
        assert archived.status_code == 200 and archived.json()["status"] == "archived"
        assert client.get(base, headers=auth).json()["rewards"] == []
        assert [r["name"] for r in client.get(f"{base}?archived=true", headers=auth).json()["rewards"]] == [
            "Free coffee"
        ]
    assert club.balance(ann) == 300
    assert audited() == ["loyalty.reward.create", "loyalty.reward.update", "loyalty.redeem", "loyalty.redeem",
                         "loyalty.redeem", "loyalty.redemption.cancel", "loyalty.reward.archive"]  # fmt: skip


def test_a_merged_away_profile_id_redeems_for_the_profile_it_joined(sqlite_club: Club) -> None:
    club = sqlite_club
    at = "2026-03-01T10:0{}:00Z"  # the known customer comes first: their profile survives the merge
    ingest(club, {"type": "identify", "userId": "u-cy", "traits": {"email": "cy@example.com"}, "timestamp": at.format(1)},
           {"type": "identify", "anonymousId": "anon-9", "traits": {"phone": "+14155550100"}, "timestamp": at.format(2)})  # fmt: skip
    visitor = find_by_identifier(club.session, "phone", "+14155550100").id
    known = find_by_identifier(club.session, "user_id", "u-cy").id
    ingest(club, {"type": "identify", "anonymousId": "anon-9", "traits": {"email": "cy@example.com"},
                  "timestamp": at.format(3)})  # fmt: skip
    assert visitor != known and get_profile(club.session, visitor).id == known  # merged
    club.give(known, 100)
    coffee = club.reward("Free coffee", 100)
    with club.installation.client() as client:
        answer = client.post(f"/api/v1/profiles/{visitor}/loyalty/redemptions", headers=bearer(club.token),
                             json={"program_id": club.program_id, "reward_id": coffee.id})  # fmt: skip
        assert answer.status_code == 201, answer.text
        assert (answer.json()["profile_id"], answer.json()["balance"]) == (known, 0)
        listed = client.get(
            f"/api/v1/profiles/{visitor}/loyalty/redemptions", headers=bearer(club.token)
        ).json()
        assert listed["profile_id"] == known and len(listed["redemptions"]) == 1


def test_an_offer_is_assigned_used_and_listed(club: Club) -> None:
    ann, bob = customer(club, "ann"), customer(club, "bob")
    auth = bearer(club.token)
    with club.installation.client() as client:
        created = client.post("/api/v1/loyalty/offers", headers=auth, json={
            "name": "Two coffees", "value": "a coffee", "code_prefix": "cof", "max_uses": 2, "valid_days": 30})  # fmt: skip
        assert created.status_code == 201, created.text
        offer = created.json()
        assert offer["code_prefix"] == "COF"
        assert (
            client.post("/api/v1/loyalty/offers", headers=auth, json={"name": "Two coffees"}).status_code
            == 409
        )
        assert (
            client.post("/api/v1/loyalty/offers", headers=auth, json={"name": "X", "max_uses": 0}).status_code
            == 422
        )
        changed = client.put(f"/api/v1/loyalty/offers/{offer['id']}", headers=auth, json={
            "name": "Two coffees", "value": "a large coffee", "code_prefix": "COF", "max_uses": 2})  # fmt: skip
        assert changed.status_code == 200 and changed.json()["value"] == "a large coffee"
        assert (
            client.get(f"/api/v1/loyalty/offers/{offer['id']}", headers=auth).json()["name"] == "Two coffees"
        )
        assert client.get("/api/v1/loyalty/offers/999", headers=auth).status_code == 404

        assign = f"/api/v1/loyalty/offers/{offer['id']}/assign"
        given = client.post(assign, headers=auth, json={"profile_ids": [ann, bob]})
        assert given.status_code == 200, given.text
        assert given.json()["assigned"] == 2
        assert [(c["offer"], c["uses_left"], c["usable"]) for c in given.json()["coupons"]] == [
            ("Two coffees", 2, True)] * 2  # fmt: skip
        again = client.post(assign, headers=auth, json={"profile_ids": [ann]}).json()
        assert again["assigned"] == 0 and again["coupons"][0]["code"] == given.json()["coupons"][0]["code"]
        assert client.post(assign, headers=auth, json={"profile_ids": ["nobody"]}).status_code == 404
        both = client.post(assign, headers=auth, json={"profile_ids": [ann], "segment_id": 1})
        assert both.status_code == 422

        code = given.json()["coupons"][0]["code"]
        use = f"/api/v1/loyalty/coupons/{code}/use"
        first = client.post(use, headers=auth, json={"order_id": "A-1", "idempotency_key": "pos-1"})
        assert first.status_code == 200 and (first.json()["uses"], first.json()["uses_left"]) == (1, 1)
        repeated = client.post(use, headers=auth, json={"order_id": "A-1", "idempotency_key": "pos-1"})
        assert repeated.json()["uses"] == 1
        assert client.post(use, headers=auth, json={"order_id": "A-2"}).json()["status"] == "used"
        used_up = client.post(use, headers=auth)
        assert used_up.status_code == 409 and used_up.json()["code"] == "used_up"
        assert client.post("/api/v1/loyalty/coupons/NOPE-1234/use", headers=auth).status_code == 404

        coupons = client.get(f"/api/v1/profiles/{ann}/loyalty/coupons", headers=auth).json()["coupons"]
        assert [(c["code"], c["usable"], c["uses_left"]) for c in coupons] == [(code, False, 0)]
        bobs = given.json()["coupons"][1]["code"]
        revoked = client.post(f"/api/v1/loyalty/coupons/{bobs}/revoke", headers=auth)
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
        refused = client.post(f"/api/v1/loyalty/coupons/{bobs}/use", headers=auth)
        assert refused.status_code == 409 and refused.json()["code"] == "revoked"

        archived = client.post(f"/api/v1/loyalty/offers/{offer['id']}/archive", headers=auth)
        assert archived.status_code == 200 and archived.json()["status"] == "archived"
        late = client.post(assign, headers=auth, json={"profile_ids": [ann]})
        assert late.status_code == 409 and late.json()["code"] == "archived"
        assert client.get("/api/v1/loyalty/offers", headers=auth).json()["offers"] == []
    assert audited() == ["loyalty.offer.create", "loyalty.offer.update", "loyalty.offer.assign",
                         "loyalty.offer.assign", "loyalty.coupon.revoke", "loyalty.offer.archive"]  # fmt: skip


def test_an_offer_goes_to_a_segment(sqlite_club: Club) -> None:
    club = sqlite_club
    for user in ("ann", "bob"):
        customer(club, user)
    segment = create_segment(
        club.session, "Everyone", {"type": "trait", "key": "email", "op": "is set"}, "test", {}
    )
    club.session.commit()
    refresh_segments(TENANT, {"segment_id": segment.id})
    auth = bearer(club.token)
    with club.installation.client() as client:
        offer = client.post("/api/v1/loyalty/offers", headers=auth, json={"name": "Gift"}).json()
        assign = f"/api/v1/loyalty/offers/{offer['id']}/assign"
        assert client.post(assign, headers=auth, json={"segment_id": segment.id}).json() == {"assigned": 2}
        assert client.post(assign, headers=auth, json={"segment_id": segment.id}).json() == {"assigned": 0}
        unknown = client.post(assign, headers=auth, json={"segment_id": 999})
        assert unknown.status_code == 422 and "no segment 999" in unknown.json()["detail"]


def test_reads_need_read_data_and_everything_else_write_marketing(sqlite_club: Club) -> None:
    club = sqlite_club
    ann = customer(club, "ann")
    club.give(ann, 100)
    coffee = club.reward("Free coffee", 10)
    analyst, marketer = bearer(token_of("analyst")), bearer(token_of("marketer"))
    base = f"/api/v1/loyalty/programs/{club.program_id}/rewards"
    reads = [base, f"{base}/{coffee.id}", f"/api/v1/profiles/{ann}/loyalty/redemptions", "/api/v1/loyalty/offers",
             f"/api/v1/profiles/{ann}/loyalty/coupons"]  # fmt: skip
    writes = [
        (base, {"name": "Tea", "cost": 5}),
        (f"{base}/{coffee.id}/archive", None),
        (
            f"/api/v1/profiles/{ann}/loyalty/redemptions",
            {"program_id": club.program_id, "reward_id": coffee.id},
        ),
        ("/api/v1/loyalty/vouchers/ANY-1/use", None),
        ("/api/v1/loyalty/redemptions/1/cancel", None),
        ("/api/v1/loyalty/offers", {"name": "Gift"}),
        ("/api/v1/loyalty/coupons/ANY-1/use", None),
    ]
    with club.installation.client() as client:
        for path in reads:
            assert client.get(path, headers=analyst).status_code == 200, path
            assert client.get(path).status_code == 401, path
        for path, body in writes:
            assert client.post(path, headers=analyst, json=body).status_code == 403, path
        redeemed = client.post(writes[2][0], headers=marketer, json=writes[2][1])
        assert redeemed.status_code == 201 and redeemed.json()["actor"].startswith(
            "marketer@shop.test (token"
        )
