"""The journeys API as a script uses it: create, activate, enter profiles, pause, report; invalid
definitions and refused actions answered clearly."""

from __future__ import annotations

from sqlmodel import select

from core.audit.models import AuditEntry
from core.db.engines import control_session
from tests.journeys.conftest import customers, definition, send_step
from tests.support import bearer

API_JOURNEY = definition({"type": "api"}, {
    "s1": send_step("s2", body="Your code: {{ event.code }}", label="Code"),
    "s2": {"type": "wait", "seconds": 3600, "next": "s3"},
    "s3": {"type": "exit"},
}, goal={"event": "Order Completed", "within_days": 7}, reentry={"mode": "after_exit", "cooldown_hours": 0})  # fmt: skip


def test_a_journey_is_created_activated_entered_reported_and_paused(sqlite_shop) -> None:
    shop = sqlite_shop
    ann, bob = customers(shop, "ann", "bob")
    (cat,) = customers(shop, "cat", consent=False)
    auth = bearer(shop.token)
    with shop.installation.client() as client:
        created = client.post(
            "/api/v1/journeys", headers=auth, json={"name": "Codes", "definition": API_JOURNEY}
        )
        assert created.status_code == 201, created.text
        journey = created.json()
        assert (journey["status"], journey["version"]) == ("draft", 1)
        base = f"/api/v1/journeys/{journey['id']}"
        assert (
            client.post(f"{base}/entries", headers=auth, json={"profile_id": ann}).status_code == 409
        )  # draft

        assert client.post(f"{base}/activate", headers=auth).json()["status"] == "active"
        entered = client.post(
            f"{base}/entries", headers=auth, json={"profile_id": ann, "data": {"code": "A1"}}
        )
        assert entered.status_code == 201, entered.text
        assert (entered.json()["state"], entered.json()["step"]) == ("waiting", "s2")
        again = client.post(f"{base}/entries", headers=auth, json={"profile_id": ann, "data": {"code": "A2"}})
        assert again.status_code == 409 and "re-entry" in again.json()["detail"]
        assert (
            client.post(f"{base}/entries", headers=auth, json={"profile_id": "p_nobody"}).status_code == 404
        )
        client.post(f"{base}/entries", headers=auth, json={"profile_id": cat, "data": {"code": "C1"}})
        client.post(f"{base}/entries", headers=auth, json={"profile_id": bob})  # no code: missing value

        report = client.get(f"{base}/report", headers=auth).json()
        assert (report["targeted"], report["sent"], report["converted"]) == (3, 0, 0)
        assert report["suppressed"] == {"missing_value": 1, "no_consent": 1}
        assert report["entries"] == {"entered": 3, "active": 3, "completed": 0, "exited": 0, "converted": 0,
                                     "holdout": 0}  # fmt: skip
        assert report["steps"]["s1"]["targeted"] == 3 and report["steps"]["s1"]["entered"] == 3
        assert (report["steps"]["s2"]["entered"], report["steps"]["s2"]["here_now"]) == (3, 3)
        assert report["steps"]["s3"]["entered"] == 0
        for key in ("delivered", "failed", "opened", "clicked", "installed", "removed"):
            assert key in report
        exported = client.get(f"{base}/report.csv", headers=auth).text.splitlines()
        assert exported[0] == "step,day,sent,delivered,opened,clicked,installed,removed,converted,failed"
        assert [line.split(",")[:2] for line in exported[1:]] == [["all", "total"], ["s1", "total"]]

        read = client.get(base, headers=auth).json()
        assert read["steps"]["s2"] == {"entered": 3, "here_now": 3} and read["entries"]["entered"] == 3
        changed = client.put(base, headers=auth, json={"name": "Codes", "definition": API_JOURNEY})
        assert changed.status_code == 409  # active: pause first
        assert client.post(f"{base}/pause", headers=auth).json()["status"] == "paused"
        assert client.post(f"{base}/pause", headers=auth).status_code == 409
        changed = client.put(base, headers=auth, json={"name": "Codes v2", "definition": API_JOURNEY})
        assert changed.status_code == 200 and changed.json()["name"] == "Codes v2"
        assert [j["name"] for j in client.get("/api/v1/journeys", headers=auth).json()["journeys"]] == [
            "Codes v2"
        ]
    with control_session() as control:
        actions = [
            e.action for e in control.exec(select(AuditEntry).where(AuditEntry.action.like("journey.%")))
        ]
    assert actions == ["journey.create", "journey.activate", "journey.pause", "journey.update"]


def test_invalid_definitions_unknown_journeys_and_taken_names_get_clear_answers(sqlite_shop) -> None:
    shop = sqlite_shop
    auth = bearer(shop.token)
    with shop.installation.client() as client:
        broken = client.post("/api/v1/journeys", headers=auth, json={"name": "Broken", "definition": definition(
            {"type": "event", "event": "X"}, {"s1": send_step("s9", body="{{ traits.name ")})})  # fmt: skip
        assert broken.status_code == 422
        problems = {p["path"]: p["message"] for p in broken.json()["problems"]}
        assert problems["steps.s1.next"] == "there is no step 's9'"
        assert problems["steps.s1.content.variants.en.body"].startswith("line 1: ")
        assert client.get("/api/v1/journeys/999", headers=auth).status_code == 404
        assert client.post("/api/v1/journeys/999/activate", headers=auth).status_code == 404
        good = {"name": "Twice", "definition": definition({"type": "api"}, {"s1": {"type": "exit"}})}
        assert client.post("/api/v1/journeys", headers=auth, json=good).status_code == 201
        assert client.post("/api/v1/journeys", headers=auth, json=good).status_code == 409
        not_api = client.post("/api/v1/journeys", headers=auth, json={
            "name": "By event", "definition": definition({"type": "event", "event": "X"}, {"s1": {"type": "exit"}})})  # fmt: skip
        journey_id = not_api.json()["id"]
        client.post(f"/api/v1/journeys/{journey_id}/activate", headers=auth)
        (profile,) = customers(shop, "ann")
        refused = client.post(
            f"/api/v1/journeys/{journey_id}/entries", headers=auth, json={"profile_id": profile}
        )
        assert refused.status_code == 409 and "API" in refused.json()["detail"]
        assert client.get("/api/v1/journeys").status_code == 401
