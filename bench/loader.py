"""Putting a backlog of pending events into a tenant: run as a subprocess with the installation's environment.

``python -m bench.loader --tenant SLUG --events N --people P --via accept|table`` generates the
journeys of :func:`bench.events.journeys` and stores them, in arrival order, as pending events:

- ``accept``: through :func:`core.ingest.service.accept`, 500 events a call, as the API stores
  them. Run it without ``TESSERA_REDIS_URL``: the queue messages of the jobs it adds go nowhere,
  and those jobs are then deleted, so nothing processes the backlog until the benchmark's
  trigger queues a new one.
- ``table``: straight into the ``event`` table (PostgreSQL ``COPY``, SQLite ``executemany`` in
  big transactions) with the rows :func:`core.ingest.service.validate` makes; no job at all.

Prints one JSON object: events stored, people, two-device people, seconds taken.
"""

from __future__ import annotations

import argparse
import enum
import itertools
import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Engine, text
from sqlmodel import Session

from bench.events import journeys
from core.db.engines import control_session, tenant_engine
from core.ingest.service import EVENT_TABLE, accept, validate
from core.tenancy.tenants import get_tenant

ACCEPT_CHUNK = 500
TABLE_CHUNK = 10_000
SQLITE_TRANSACTION = 50_000


def _chunks(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _tenant_database(slug: str) -> str:
    with control_session() as control:
        return get_tenant(control, slug).database


def load_via_accept(slug: str, events: Iterable[dict[str, Any]]) -> int:
    """Store ``events`` with the ingest service; delete the jobs it queued. Events stored."""
    engine = tenant_engine(_tenant_database(slug))
    stored = 0
    for chunk in _chunks(events, ACCEPT_CHUNK):
        with Session(engine, expire_on_commit=False) as session:
            result = accept(session, slug, chunk, None, "api")
        if result.rejected:
            raise RuntimeError(f"events were rejected: {result.rejected[:3]}")
        stored += result.accepted
    with engine.begin() as conn:  # their messages went nowhere; the benchmark's trigger queues a new one
        conn.execute(text("DELETE FROM job WHERE status = 'pending'"))
    return stored


def _copy_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return value


def _rows(events: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """The ``event`` rows of the events, as the ingest service makes them, in chunks."""
    for chunk in _chunks(events, TABLE_CHUNK):
        prepared = validate(chunk, source="api")
        if prepared.rejected:
            raise RuntimeError(f"events were rejected: {prepared.rejected[:3]}")
        yield prepared.rows


def _copy_into_postgres(engine: Engine, events: Iterable[dict[str, Any]]) -> int:
    raw = engine.raw_connection()
    stored = 0
    try:
        connection = raw.driver_connection
        assert connection is not None
        with connection.cursor() as cursor:
            for rows in _rows(events):
                columns = list(rows[0])
                names = ", ".join(f'"{column}"' for column in columns)
                with cursor.copy(f"COPY event ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row([_copy_value(row[column]) for column in columns])
                stored += len(rows)
        connection.commit()
    finally:
        raw.close()
    return stored


def _insert_into_sqlite(engine: Engine, events: Iterable[dict[str, Any]]) -> int:
    statement = EVENT_TABLE.insert()
    stored = 0
    for transaction in _chunks(events, SQLITE_TRANSACTION):
        with engine.begin() as conn:
            for rows in _rows(transaction):
                conn.execute(statement, rows)  # executemany
                stored += len(rows)
    return stored


def load_into_table(slug: str, events: Iterable[dict[str, Any]]) -> int:
    """Insert the rows of ``events`` straight into the ``event`` table, pending. Events stored."""
    engine = tenant_engine(_tenant_database(slug))
    if engine.dialect.name == "postgresql":
        return _copy_into_postgres(engine, events)
    return _insert_into_sqlite(engine, events)


def main() -> None:
    """Parse the options, load, print the JSON result."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--people", type=int, required=True)
    parser.add_argument("--two-device-share", type=float, default=0.2)
    parser.add_argument("--via", choices=("accept", "table"), required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tag", default="b")
    args = parser.parse_args()
    started = time.perf_counter()
    population, events = journeys(args.events, args.people, args.two_device_share, args.seed, args.tag)
    load = load_via_accept if args.via == "accept" else load_into_table
    stored = load(args.tenant, events)
    print(
        json.dumps(
            {
                "stored": stored,
                "people": population.people,
                "two_device_people": population.two_device_people,
                "seconds": time.perf_counter() - started,
            }
        )
    )


if __name__ == "__main__":
    main()
