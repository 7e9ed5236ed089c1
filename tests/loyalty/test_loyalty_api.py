"""The programs API: a program with tiers and a rule set up over HTTP, a dry run, the rule live,
and a member's loyalty read back; invalid rules answer 422 with their paths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.loyalty.club import Club
from tests.loyalty.stream import track
from tests.support import bearer


def test_a_program_is_set_up_tried_and_read_through_the_api(sqlite_club: Club) -> None:
    club = sqlite_club
    auth = bearer(club.token)
    before = datetime.now(UTC) - timedelta(hours=2)  # before the rule: tried on, never earns
    ann = track(club, "ann", "Order Completed", at=before, order_id="o0", revenue=40, currency="EUR")
    with club.installation.client() as client:
        created = client.post(
            "/api/v1/loyalty/programs", headers=auth, json={"key": "stars", "name": "Stars"}
        )
        assert created.status_code == 201, created.text
        program = created.json()["id"]
        base = f"/api/v1/loyalty/programs/{program}"
        assert (
            client.post(f"{base}/tiers", headers=auth, json={"name": "Gold", "threshold": 50}).status_code
            == 201
        )
        rule = {"name": "Per euro", "event": "Order Completed", "kind": "per_amount", "points": 2,
                "where": [{"key": "currency", "op": "=", "value": "EUR"}]}  # fmt: skip
        bad = client.post(
            f"{base}/rules", headers=auth, json={**rule, "where": [{"key": "currency", "op": "~"}]}
        )
        assert bad.status_code == 422 and bad.json()["problems"][0]["path"].startswith("where[0]")
        tried = client.post(f"{base}/dry-run", headers=auth, json={"profile_id": ann, "rule": rule})
        assert tried.json()["points"] == 80 and all(c["passed"] for c in tried.json()["checks"])
        saved = client.post(f"{base}/rules", headers=auth, json=rule).json()
        assert client.post(f"{base}/rules/{saved['id']}/activate", headers=auth).json()["status"] == "active"
        track(club, "ann", "Order Completed", order_id="o1", revenue=30, currency="EUR")
        read = client.get(f"/api/v1/profiles/{ann}/loyalty", headers=auth).json()
        [stars] = [p for p in read["programs"] if p["key"] == "stars"]
        assert (stars["balance"], stars["tier"]) == (60, "Gold")
        assert [(e["kind"], e["points"]) for e in stars["ledger"]] == [("earn", 60)]
        taken = client.post(f"/api/v1/profiles/{ann}/loyalty/adjustments", headers=auth,
                            json={"program_id": program, "points": -100, "reason": "test"})  # fmt: skip
        assert taken.status_code == 409 and "balance is 60" in taken.json()["detail"]
