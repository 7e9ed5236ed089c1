"""The segments API: create, change, read, count, list members page by page, reach, archive.

Invalid rules get a 422 naming the place in the tree and the reason, never a 500.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from core.audit.models import AuditEntry
from core.db.engines import control_session, tenant_engine
from core.ingest.service import accept
from core.profiles.jobs import process_events
from core.queue.models import Job
from core.segments.jobs import REFRESH_SEGMENTS, refresh_segments
from tests.support import bearer

TENANT = "shop"
FRENCH = {"type": "trait", "key": "country", "op": "=", "value": "FR"}


@pytest.fixture
def api(installation) -> tuple[TestClient, dict[str, str], str]:
    created = installation.tenant(TENANT)
    database = created.tenant.database
    people = [
        {"type": "identify", "userId": f"u{n}", "messageId": f"m{n}",
         "traits": {"country": "FR" if n % 2 else "DE", "email": f"u{n}@example.com",
                    "consent": {"whatsapp": n % 3 == 0}}}
        for n in range(1, 8)
    ]  # fmt: skip
    with Session(tenant_engine(database)) as session:
        assert not accept(session, TENANT, people).rejected
    process_events(TENANT, {})
    with installation.client() as client:
        yield client, bearer(created.api_token), database


def test_a_segment_is_created_counted_and_listed_page_by_page(api) -> None:
    client, auth, database = api
    created = client.post("/api/v1/segments", json={"name": "French", "rule": FRENCH}, headers=auth)
    assert created.status_code == 201, created.text
    segment = created.json()
    assert (
        segment["size"] is None and segment["rule"] == FRENCH and segment["created_by"].startswith("admin@")
    )
    with Session(tenant_engine(database)) as session:
        jobs = session.exec(select(Job).where(Job.kind == REFRESH_SEGMENTS)).all()
        assert [job.payload for job in jobs] == [{"segment_id": segment["id"]}]
    refresh_segments(TENANT, {"segment_id": segment["id"]})

    assert client.get(f"/api/v1/segments/{segment['id']}", headers=auth).json()["size"] == 4
    assert client.get(f"/api/v1/segments/{segment['id']}/count", headers=auth).json()["count"] == 4
    first = client.get(f"/api/v1/segments/{segment['id']}/members?limit=3", headers=auth).json()
    second = client.get(
        f"/api/v1/segments/{segment['id']}/members?limit=3&after={first['next']}", headers=auth
    ).json()
    assert len(first["members"]) == 3 and len(second["members"]) == 1 and second["next"] is None
    ids = [m["profile_id"] for m in first["members"] + second["members"]]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert [s["name"] for s in client.get("/api/v1/segments", headers=auth).json()["segments"]] == ["French"]
    with control_session() as control:
        actions = [
            e.action for e in control.exec(select(AuditEntry).where(AuditEntry.action.like("segment.%")))
        ]
    assert actions == ["segment.create"]


def test_an_unsaved_rule_is_counted_live(api) -> None:
    client, auth, _ = api
    rule = {"all": [FRENCH, {"type": "consent", "channel": "whatsapp"}]}
    assert client.post("/api/v1/segments/count", json={"rule": rule}, headers=auth).json()["count"] == 1
    negated = {"not": FRENCH}
    assert client.post("/api/v1/segments/count", json={"rule": negated}, headers=auth).json()["count"] == 3


def test_changing_the_rule_re_evaluates_and_archiving_lets_members_go(api) -> None:
    client, auth, _ = api
    segment = client.post("/api/v1/segments", json={"name": "French", "rule": FRENCH}, headers=auth).json()
    refresh_segments(TENANT, {"segment_id": segment["id"]})
    german = {"type": "trait", "key": "country", "op": "=", "value": "DE"}
    changed = client.patch(
        f"/api/v1/segments/{segment['id']}", json={"rule": german, "name": "German"}, headers=auth
    )
    assert changed.status_code == 200 and changed.json()["name"] == "German"
    refresh_segments(TENANT, {"segment_id": segment["id"]})
    assert client.get(f"/api/v1/segments/{segment['id']}", headers=auth).json()["size"] == 3
    assert client.delete(f"/api/v1/segments/{segment['id']}", headers=auth).status_code == 204
    assert client.get(f"/api/v1/segments/{segment['id']}", headers=auth).status_code == 404


@pytest.mark.parametrize(
    ("rule", "path", "message"),
    [
        ({"type": "trait", "key": "country", "op": "~=", "value": "FR"}, "op", "unknown operator '~='"),
        ({"type": "trait", "key": "age", "op": "<", "value": "old"}, "value", "< takes numbers or dates"),
        ({"type": "computed", "key": "revenue", "op": ">", "value": "a lot"}, "value", "> takes numbers"),
        ({"type": "computed", "key": "rfm_segment", "op": "=", "value": "stars"}, "value", "'stars' is not one of"),
        ({"type": "computed", "key": "wealth", "op": "=", "value": 1}, "key", "unknown computed trait"),
        ({"all": [FRENCH, {"type": "segment", "segment": 999}]}, "all[1].segment", "there is no segment 999"),
        ({"any": [{"type": "event", "event": "Order Completed", "op": ">=", "value": "two"}]}, "any[0].value",
         ">= takes numbers"),
        ({"type": "event", "event": "Order Completed", "window": {"last_days": 0}}, "window", "last_days"),
        ({"type": "shoe_size", "op": "=", "value": 42}, "type", "unknown condition type 'shoe_size'"),
        ({"all": FRENCH}, "all", "all takes a list of rules"),
        ({"all": [], "any": []}, "", "exactly one key"),
    ],
)  # fmt: skip
def test_an_invalid_rule_is_refused_with_where_and_why(api, rule, path, message) -> None:
    client, auth, _ = api
    answer = client.post("/api/v1/segments", json={"name": "Broken", "rule": rule}, headers=auth)
    assert answer.status_code == 422, answer.text
    problems = answer.json()["problems"]
    assert any(p["path"] == path and message in p["message"] for p in problems), problems
    assert client.post("/api/v1/segments/count", json={"rule": rule}, headers=auth).status_code == 422


def test_a_segment_cannot_come_to_refer_to_itself(api) -> None:
    client, auth, _ = api
    first = client.post("/api/v1/segments", json={"name": "A", "rule": FRENCH}, headers=auth).json()
    second = client.post("/api/v1/segments", json={"name": "B", "rule": {"type": "segment", "segment": first["id"]}},
                         headers=auth).json()  # fmt: skip
    itself = client.patch(f"/api/v1/segments/{first['id']}", json={"rule": {"type": "segment", "segment": first["id"]}},
                          headers=auth)  # fmt: skip
    assert itself.status_code == 422 and "refers back to itself" in itself.text
    cycle = client.patch(f"/api/v1/segments/{first['id']}", json={"rule": {"not": {"type": "segment", "segment": second["id"]}}},
                         headers=auth)  # fmt: skip
    assert cycle.status_code == 422
    assert "refers back to itself" in cycle.json()["problems"][0]["message"]
    refused = client.delete(f"/api/v1/segments/{first['id']}", headers=auth)
    assert refused.status_code == 409 and "used by: B" in refused.text


def test_names_are_unique_and_bodies_are_checked(api) -> None:
    client, auth, _ = api
    assert (
        client.post("/api/v1/segments", json={"name": "French", "rule": FRENCH}, headers=auth).status_code
        == 201
    )
    again = client.post("/api/v1/segments", json={"name": "French", "rule": FRENCH}, headers=auth)
    assert again.status_code == 409 and "already exists" in again.text
    assert client.post("/api/v1/segments", json={"rule": FRENCH}, headers=auth).status_code == 422
    assert client.post("/api/v1/segments", content=b"{not json", headers=auth).status_code == 422
    assert (
        client.post("/api/v1/segments", json={"name": "X", "rule": "country=FR"}, headers=auth).status_code
        == 422
    )
    assert client.get("/api/v1/segments/12345", headers=auth).status_code == 404
    assert client.get("/api/v1/segments", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_reach_counts_consent_and_an_address_per_enabled_channel(api, installation) -> None:
    client, auth, _ = api
    from core.plugins import get_host
    from core.tenancy.plugin_settings import set_enabled
    from core.tenancy.tenants import get_tenant

    with control_session() as control:
        set_enabled(control, get_tenant(control, TENANT), get_host(), "whatsapp", True)
        control.commit()
    segment = client.post("/api/v1/segments", json={"name": "French", "rule": FRENCH}, headers=auth).json()
    reach = client.get(f"/api/v1/segments/{segment['id']}/reach", headers=auth).json()["reach"]
    # u3 is French with WhatsApp consent but no WhatsApp id yet: consented, not reachable.
    assert reach == [{"channel": "whatsapp", "label": reach[0]["label"], "consented": 1, "reachable": 0,
                      "address": "whatsapp_id"}]  # fmt: skip


def test_a_consent_given_through_the_api_brings_the_profile_in_at_once(api) -> None:
    client, auth, _ = api
    rule = {"type": "consent", "channel": "sms"}
    segment = client.post("/api/v1/segments", json={"name": "SMS", "rule": rule}, headers=auth).json()
    refresh_segments(TENANT, {"segment_id": segment["id"]})
    members = f"/api/v1/segments/{segment['id']}/members"
    assert client.get(members, headers=auth).json()["members"] == []
    profile_id = client.get("/api/v1/profiles?identifier=user_id:u1", headers=auth).json()["id"]
    given = client.post(
        f"/api/v1/profiles/{profile_id}/consents", json={"channel": "sms", "granted": True}, headers=auth
    )
    assert given.status_code == 200
    assert [m["profile_id"] for m in client.get(members, headers=auth).json()["members"]] == [profile_id]
    detail = client.get(f"/api/v1/profiles/{profile_id}", headers=auth).json()
    assert [s["name"] for s in detail["segments"]] == ["SMS"]
