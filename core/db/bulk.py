"""Set-based writes and lookups for the hot paths: many rows per statement, on both databases.

Row-by-row ORM writes cost a round trip and Python bookkeeping per row; processing thousands of
events a second needs one statement per table instead. On PostgreSQL rows go in with ``COPY`` and
are updated or looked up through ``unnest`` of typed arrays (one parameter per column, however
many rows); on SQLite, which runs in-process, ``executemany`` and chunked ``IN`` lists are as good.

Every function works inside the caller's transaction (a SQLAlchemy :class:`Connection`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Connection, Enum, Select, Table, bindparam, select, text, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.elements import ColumnElement

from core.db.engines import json_dumps

SQLITE_CHUNK = 400  # below SQLite's limit of bound variables per statement, even for pairs
_PG = postgresql.dialect()


def is_postgres(connection: Connection) -> bool:
    """True on PostgreSQL, False on SQLite."""
    return connection.dialect.name == "postgresql"


def chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``values`` in consecutive slices of at most ``size``."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _pg_type(table: Table, name: str) -> str:
    column = table.c[name]
    if isinstance(column.type.dialect_impl(_PG), postgresql.JSONB):
        return "jsonb"
    return "json" if isinstance(column.type, JSON) else str(column.type.compile(dialect=_PG))


def _json_text(value: Any) -> str | None:
    return None if value is None else json_dumps(value)


def _enum_text(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _converter(table: Table, name: str) -> Callable[[Any], Any] | None:
    """How a Python value of the column goes to PostgreSQL as-is (None: no conversion needed)."""
    kind = table.c[name].type
    if isinstance(kind, JSON):
        return _json_text
    if isinstance(kind, Enum):
        return _enum_text
    return None


def _values(table: Table, name: str, rows: Sequence[dict[str, Any]]) -> list[Any]:
    convert = _converter(table, name)
    return [row[name] for row in rows] if convert is None else [convert(row[name]) for row in rows]


def insert_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table``: COPY on PostgreSQL."""
    if not rows:
        return
    names = list(rows[0])
    if not is_postgres(connection):
        connection.execute(table.insert(), list(rows))
        return
    columns = ", ".join(f'"{name}"' for name in names)
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(f'COPY "{table.name}" ({columns}) FROM STDIN') as copy:
            for values in zip(*(_values(table, name, rows) for name in names), strict=True):
                copy.write_row(values)
    finally:
        cursor.close()


def insert_new_rows(
    connection: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    unique: str,
    returning: Sequence[str],
) -> list[Any]:
    """Insert the ``rows`` whose ``unique`` column value is not taken yet; ``returning`` of those inserted.

    One statement over typed arrays on PostgreSQL (a multi-row ``VALUES`` of thousands of rows
    costs more to compile and parse than to run); chunks of multi-row ``VALUES`` on SQLite.
    """
    if not rows:
        return []
    names = list(rows[0])
    back = ", ".join(f'"{name}"' for name in returning)
    if not is_postgres(connection):
        dialect_insert = sqlite_insert(table).on_conflict_do_nothing(index_elements=[unique])
        found: list[Any] = []
        for chunk in chunks(list(rows), max(1, 30_000 // len(names))):
            chunk_insert = dialect_insert.values(list(chunk)).returning(
                *(table.c[name] for name in returning)
            )
            found.extend(connection.execute(chunk_insert).all())
        return found
    columns = ", ".join(f'"{name}"' for name in names)
    params, source, values = _pg_params(table, rows, names, varying=unique)
    statement = text(
        f'INSERT INTO "{table.name}" ({columns}) SELECT {", ".join(values)} FROM {source} '
        f'ON CONFLICT ("{unique}") DO NOTHING RETURNING {back}'
    ).columns(*(table.c[name] for name in returning))
    return list(connection.execute(statement, params))


def update_rows(
    connection: Connection, table: Table, rows: Sequence[dict[str, Any]], key: str = "id"
) -> None:
    """Set the other columns of each row where ``key`` matches: one statement on PostgreSQL."""
    if not rows:
        return
    names = [name for name in rows[0] if name != key]
    if not is_postgres(connection):
        by_key = table.update().where(table.c[key] == bindparam("_key"))
        statement = by_key.values({name: bindparam(name) for name in names})
        connection.execute(statement, [{**row, "_key": row[key]} for row in rows])
        return
    params, source, values = _pg_params(table, rows, [key, *names], varying=key)
    assignments = ", ".join(f'"{name}" = {value}' for name, value in zip(names, values[1:], strict=True))
    from_arrays = text(
        f'UPDATE "{table.name}" SET {assignments} FROM {source} WHERE "{table.name}"."{key}" = {values[0]}'
    )
    connection.execute(from_arrays, params)


def _pg_params(
    table: Table, rows: Sequence[dict[str, Any]], names: Sequence[str], varying: str
) -> tuple[dict[str, Any], str, list[str]]:
    """For rows going in at once: the parameters, the ``unnest(...) AS v(...)`` of their arrays,
    and each column's SQL value.

    A column with one value in every row (a campaign's message, its state...) is one typed
    parameter; the others (``varying`` always) are arrays of one element per row, read as
    ``v."<name>"``. Dumping arrays element by element was most of the cost of writing a
    campaign's deliveries.
    """
    params: dict[str, Any] = {}
    arrays: list[str] = []
    aliases: list[str] = []
    values: list[str] = []
    for i, name in enumerate(names):
        column = _values(table, name, rows)
        if name != varying and all(value == column[0] for value in column):
            params[f"c{i}"] = column[0]
            values.append(f"CAST(:c{i} AS {_pg_type(table, name)})")
            continue
        params[f"c{i}"] = array_param(column)
        arrays.append(f"CAST(:c{i} AS {_pg_type(table, name)}[])")
        aliases.append(f'"{name}"')
        values.append(f'v."{name}"')
    return params, f"unnest({', '.join(arrays)}) AS v({', '.join(aliases)})", values


# Types whose text PostgreSQL reads back as the same value (subclasses such as enums excepted:
# their text is not their value).
_AS_TEXT = frozenset({str, int, float, bool, date, datetime, type(None)})


def array_param(values: list[Any]) -> Any:
    """``values`` as the parameter of a ``CAST(:p AS type[])``: one array literal (``{"a","b"}``).

    psycopg dumps a list parameter element by element in Python: a lookup of 100,000 ids spent
    more time there than in its query. Every element is quoted and escaped, so any text goes as it
    is; a list holding anything but plain text, numbers, dates and ``None`` goes as a list.
    """
    if any(type(v) not in _AS_TEXT for v in values):
        return values
    quoted = (
        "NULL" if v is None else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values
    )
    return "{" + ",".join(quoted) + "}"


def select_in(
    connection: Connection,
    statement: Select[Any],
    match: ColumnElement[Any],
    values: Iterable[Any],
    *,
    pg_type: str,
) -> Iterator[Any]:
    """The rows of ``statement`` where ``match`` is one of ``values`` (``pg_type``: their SQL type)."""
    listed = list(dict.fromkeys(values))
    if not listed:
        return
    if is_postgres(connection):
        condition = match == text(f"ANY(CAST(:values AS {pg_type}[]))")
        # Fetched at once: row by row costs a call into the driver per row.
        yield from connection.execute(statement.where(condition), {"values": array_param(listed)}).all()
        return
    for chunk in chunks(listed, SQLITE_CHUNK):
        yield from connection.execute(statement.where(match.in_(chunk))).all()


def select_pairs_in(
    connection: Connection,
    statement: Select[Any],
    first: ColumnElement[Any],
    second: ColumnElement[Any],
    pairs: Iterable[tuple[str, str]],
) -> Iterator[Any]:
    """The rows of ``statement`` where ``(first, second)`` is one of ``pairs`` (pairs of text)."""
    listed = list(dict.fromkeys(pairs))
    if not listed:
        return
    if is_postgres(connection):
        wanted = select(text("a"), text("b")).select_from(
            text("unnest(CAST(:firsts AS text[]), CAST(:seconds AS text[])) AS wanted(a, b)")
        )
        condition = tuple_(first, second).in_(wanted)
        params = {
            "firsts": array_param([a for a, _ in listed]),
            "seconds": array_param([b for _, b in listed]),
        }
        yield from connection.execute(statement.where(condition), params)
        return
    # SQLite scans the whole table for a row-value IN list: ask per first value instead, which
    # an index on (first, second) answers.
    by_first: dict[str, list[str]] = {}
    for a, b in listed:
        by_first.setdefault(a, []).append(b)
    for a, seconds in by_first.items():
        for chunk in chunks(seconds, SQLITE_CHUNK):
            yield from connection.execute(statement.where(first == a, second.in_(chunk)))


def delete_in(
    connection: Connection, table: Table, match: ColumnElement[Any], values: Iterable[Any], *, pg_type: str
) -> int:
    """Delete the rows of ``table`` where ``match`` is one of ``values``; how many went."""
    listed = list(dict.fromkeys(values))
    if not listed:
        return 0
    if is_postgres(connection):
        condition = match == text(f"ANY(CAST(:values AS {pg_type}[]))")
        return int(
            connection.execute(table.delete().where(condition), {"values": array_param(listed)}).rowcount or 0
        )
    return sum(
        int(connection.execute(table.delete().where(match.in_(chunk))).rowcount or 0)
        for chunk in chunks(listed, SQLITE_CHUNK)
    )
