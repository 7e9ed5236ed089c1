"""Group commit: concurrent requests share transactions, and each still gets its own counts."""

from __future__ import annotations

import asyncio

import orjson
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.db.engines import tenant_engine
from core.ingest.committer import GroupCommitter
from core.ingest.models import Event
from core.ingest.service import validate
from core.queue.models import Job

TENANT = "acme"


def track(message_id: str) -> dict:
    return {"type": "track", "userId": "u1", "event": "Clicked", "messageId": message_id}


def test_concurrent_requests_share_commits_and_keep_their_own_counts(installation) -> None:
    database = installation.tenant(TENANT).tenant.database
    engine = tenant_engine(database)
    commits: list[int] = []
    event.listen(engine, "commit", lambda connection: commits.append(1))
    committer = GroupCommitter()
    requests = [validate([track(f"m{n}"), track(f"m{n + 1}")]) for n in range(0, 40, 2)]
    requests.append(
        validate([track("m0"), track("new"), {"type": "track"}])
    )  # a duplicate, a new one, a bad one

    async def send_all():
        return await asyncio.gather(*(committer.submit(TENANT, database, r) for r in requests))

    results = asyncio.run(send_all())

    assert [(r.accepted, r.duplicates) for r in results[:-1]] == [(2, 0)] * 20
    last = results[-1]
    assert (last.accepted, last.duplicates, [x["index"] for x in last.rejected]) == (1, 1, [2])
    assert len(commits) < len(requests)  # grouped: fewer transactions than requests
    with Session(engine) as session:
        assert len(session.exec(select(Event)).all()) == 41
        assert len(session.exec(select(Job)).all()) == 1


def test_a_failing_group_fails_each_of_its_requests_and_stores_nothing(installation) -> None:
    database = installation.tenant(TENANT).tenant.database
    committer = GroupCommitter()
    bad = validate([track("x1")])
    bad.rows[0]["timestamp"] = None  # the database refuses the row (NOT NULL): the whole group fails
    bad.encoded[0] = orjson.dumps(bad.rows[0])

    async def send():
        return await asyncio.gather(
            committer.submit(TENANT, database, bad), committer.submit(TENANT, database, validate([track("x2")])),
            return_exceptions=True,
        )  # fmt: skip

    first, second = asyncio.run(send())
    assert isinstance(first, IntegrityError) and isinstance(second, IntegrityError)  # one group, one fate
    with Session(tenant_engine(database)) as session:
        assert session.exec(select(Event)).all() == []
