"""Group commit: the events of many concurrent requests go into one transaction.

Each ingestion request must not be answered before its events are durable, and a commit (an
fsync) plus a few round trips cost far more than inserting a hundred more rows. So requests hand
their validated events to a :class:`GroupCommitter` and wait: per tenant database, one writer
takes everything waiting, stores it with :func:`core.ingest.service.store_all` in one
transaction, commits, and answers every request of the group with its own counts. While it
writes, the next group gathers; under light load a group is one request and nothing waits.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from anyio import to_thread
from sqlmodel import Session

from core.db.engines import tenant_engine
from core.ingest.service import IngestResult, Prepared, store_all

MAX_GROUP_EVENTS = 5_000  # bounds one transaction; the rest waits for the next group


@dataclass
class _Waiting:
    prepared: Prepared
    answer: asyncio.Future[IngestResult]


@dataclass
class _Database:
    slug: str
    queue: deque[_Waiting] = field(default_factory=deque)
    writing: bool = False


class GroupCommitter:
    """Stores requests' events in shared transactions, one writer per tenant database."""

    def __init__(self, max_group_events: int = MAX_GROUP_EVENTS) -> None:
        self.max_group_events = max_group_events
        self._databases: dict[str, _Database] = {}

    async def submit(self, tenant_slug: str, database: str, prepared: Prepared) -> IngestResult:
        """Store ``prepared`` (validated events) durably; returns when its group has committed.

        Raises what storing raised (a database error) for every request of a failed group.
        """
        if not prepared.rows:
            return IngestResult(rejected=prepared.rejected)
        state = self._databases.setdefault(database, _Database(tenant_slug))
        waiting = _Waiting(prepared, asyncio.get_running_loop().create_future())
        state.queue.append(waiting)
        if not state.writing:
            state.writing = True
            asyncio.get_running_loop().create_task(self._write(database, state))
        return await waiting.answer

    async def _write(self, database: str, state: _Database) -> None:
        try:
            while state.queue:
                group: list[_Waiting] = []
                size = 0
                while state.queue and (
                    not group or size + len(state.queue[0].prepared.rows) <= self.max_group_events
                ):
                    waiting = state.queue.popleft()
                    group.append(waiting)
                    size += len(waiting.prepared.rows)
                try:
                    results = await to_thread.run_sync(
                        _commit, state.slug, database, [w.prepared for w in group]
                    )
                except Exception as exc:  # every request of the group learns it was not stored
                    for waiting in group:
                        if not waiting.answer.done():
                            waiting.answer.set_exception(exc)
                    continue
                for waiting, result in zip(group, results, strict=True):
                    if not waiting.answer.done():
                        waiting.answer.set_result(result)
        finally:
            state.writing = False


def _commit(tenant_slug: str, database: str, requests: list[Prepared]) -> list[IngestResult]:
    with Session(tenant_engine(database), expire_on_commit=False) as session:
        results = store_all(session, tenant_slug, requests)
        if any(result.stored for result in results):
            session.commit()
        else:
            session.rollback()
    return results
