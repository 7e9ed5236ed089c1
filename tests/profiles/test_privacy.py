"""Export holds everything on a person; erasure leaves none of it behind, in any table."""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlmodel import Session

from core.db.engines import tenant_engine
from core.ingest.service import accept
from core.privacy.service import erase_person, export_person
from core.profiles.jobs import process_events
from core.profiles.service import find_by_identifier
from core.segments.jobs import refresh_segments
from core.segments.service import create_segment

PERSONAL = ("zoe.private@example.com", "u-zoe-77", "anon-zoe-1")


def all_text(database: str) -> str:
    engine = tenant_engine(database)
    dump = []
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                dump.append(repr(tuple(row)))
    return "\n".join(dump)


def test_export_then_erase_leaves_no_personal_data(installation) -> None:
    tenant = installation.tenant("acme").tenant
    events = [
        {"type": "track", "anonymousId": PERSONAL[2], "event": "Visit", "messageId": "z1",
         "timestamp": "2026-01-01T10:00:00Z"},
        {"type": "identify", "anonymousId": PERSONAL[2], "userId": PERSONAL[1], "messageId": "z2",
         "timestamp": "2026-01-01T10:01:00Z", "traits": {"email": PERSONAL[0], "consent": {"email": True}}},
        {"type": "track", "userId": PERSONAL[1], "event": "Order Completed", "messageId": "z-order",
         "timestamp": "2026-01-01T10:05:00Z", "properties": {"order_id": "Z-1", "total": 42.5}},
        {"type": "identify", "userId": "u-other", "messageId": "o1", "timestamp": "2026-01-01T10:02:00Z",
         "traits": {"email": "other@example.com"}},
    ]  # fmt: skip
    with Session(tenant_engine(tenant.database)) as session:
        buyers = create_segment(
            session, "Buyers", {"type": "event", "event": "Order Completed"}, "admin", {}
        ).id
        session.commit()
        refresh_segments("acme", {"segment_id": buyers})  # empty now: Zoe enters it in real time
        accept(session, "acme", events)
    process_events("acme", {})
    with Session(tenant_engine(tenant.database)) as session:
        zoe = find_by_identifier(session, "user_id", PERSONAL[1])
        exported = export_person(session, zoe.id)
        assert {e["message_id"] for e in exported["events"]} == {"z1", "z2", "z-order"}
        assert [(t["orders"], t["revenue"]) for t in exported["computed_traits"]] == [(1, 42.5)]
        assert {(i["type"], i["value"]) for i in exported["identities"]} >= {("email", PERSONAL[0])}
        assert exported["consents"][0]["channel"] == "email"
        assert [m["segment_id"] for m in exported["segment_memberships"]] == [buyers]
        assert [e["name"] for e in exported["internal_events"]] == ["Segment Entered"]
        erase_person(session, zoe.id)
        session.commit()
    leftovers = all_text(tenant.database)
    assert not [value for value in (*PERSONAL, zoe.id, "Z-1") if value in leftovers]
    assert "other@example.com" in leftovers  # someone else's data stays

    # A later event from the same device starts a fresh, empty profile.
    with Session(tenant_engine(tenant.database)) as session:
        accept(session, "acme", [{"type": "track", "anonymousId": PERSONAL[2], "event": "Visit", "messageId": "z3",
                                  "timestamp": "2026-02-01T10:00:00Z"}])  # fmt: skip
    process_events("acme", {})
    with Session(tenant_engine(tenant.database)) as session:
        fresh = find_by_identifier(session, "anonymous_id", PERSONAL[2])
        assert fresh.id != zoe.id and fresh.traits == {}
