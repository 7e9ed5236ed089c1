"""Reading a tenant database from the benchmark process: plain SQL, no Tessera import."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text


class TenantDatabase:
    """Counts the benchmarks watch: events by status, live and merged profiles."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def has_pending(self) -> bool:
        """True while any event of the tenant waits to be processed."""
        with self.engine.connect() as conn:
            return (
                conn.execute(text("SELECT 1 FROM event WHERE status = 'pending' LIMIT 1")).first() is not None
            )

    def status_counts(self) -> dict[str, int]:
        """How many events are pending, processed and failed."""
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT status, count(*) FROM event GROUP BY status")).all()
        counts = {"pending": 0, "processed": 0, "failed": 0}
        counts.update({str(status): int(count) for status, count in rows})
        return counts

    def profile_counts(self) -> tuple[int, int]:
        """(profiles not merged into another, profiles merged away)."""
        with self.engine.connect() as conn:
            live, merged = conn.execute(
                text("SELECT count(*) - count(merged_into), count(merged_into) FROM profile")
            ).one()
        return int(live), int(merged)


@contextmanager
def tenant_database(url: str) -> Iterator[TenantDatabase]:
    """A :class:`TenantDatabase` on ``url``; its connections are closed afterwards."""
    engine = create_engine(url)
    try:
        yield TenantDatabase(engine)
    finally:
        engine.dispose()
