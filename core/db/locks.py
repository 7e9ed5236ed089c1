"""Named transaction-scoped locks, on both databases.

PostgreSQL has advisory locks, shared or exclusive, released when the transaction ends. SQLite
has one write lock per database: taking it (``BEGIN IMMEDIATE``) serializes against every other
writer, which gives at least the same guarantees as any named lock.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import Session


def transaction_lock(session: Session, name: str, *, shared: bool = False) -> None:
    """Hold the lock ``name`` until the session's transaction ends (shared: with other sharers)."""
    if session.get_bind().dialect.name == "postgresql":
        function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        session.connection().execute(text(f"SELECT {function}(hashtext(:name))"), {"name": name})
        return
    if shared:  # a writer takes SQLite's write lock anyway when it writes
        return
    dbapi = session.connection().connection.dbapi_connection
    if dbapi is not None and not dbapi.in_transaction:  # type: ignore[attr-defined]
        dbapi.execute("BEGIN IMMEDIATE")  # type: ignore[attr-defined]
