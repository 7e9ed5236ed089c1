"""Set-based writes: what goes in many rows at once comes back exactly, on both databases.

On PostgreSQL a column with the same value in every row goes as one parameter and the others as
arrays; whichever way a column goes, each row must get its own values.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.db import engines
from core.db.bulk import delete_in, insert_new_rows, insert_rows, select_in, select_pairs_in, update_rows


class Mood(enum.StrEnum):
    calm = "calm"
    busy = "busy"


METADATA = sa.MetaData()
PROBE = sa.Table(
    "bulk_probe",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(40), nullable=False, unique=True),
    sa.Column("mood", sa.Enum(Mood, native_enum=False, length=12), nullable=False),
    sa.Column("count", sa.Integer),
    sa.Column("note", sa.String(100)),
    sa.Column("payload", sa.JSON),
    sa.Column("at", sa.DateTime(timezone=True)),
    sa.Column("flag", sa.Boolean, nullable=False),
)
START = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
VALUES = {
    "mood": st.sampled_from(list(Mood)),
    "count": st.one_of(st.none(), st.integers(-3, 3)),
    "note": st.one_of(st.none(), st.sampled_from(["", "a", "ü €"])),
    "payload": st.one_of(st.none(), st.just({"a": [1, "x"]}), st.just({})),
    "at": st.one_of(st.none(), st.integers(0, 2).map(lambda h: START + timedelta(hours=h))),
    "flag": st.booleans(),
}
# Few distinct values per column, so that whole columns are often one value (and often not).
ROWS = st.lists(st.fixed_dictionaries(VALUES), min_size=1, max_size=12)


@pytest.fixture
def engine(installation) -> Any:
    engine = engines.control_engine()
    METADATA.create_all(engine)
    return engine


def _stored(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(PROBE).order_by(PROBE.c.key)).mappings().all()
    return [{**row, "at": row["at"] and row["at"].replace(tzinfo=UTC)} for row in rows]


def _fresh(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.execute(PROBE.delete())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS)
def test_inserted_rows_come_back_exactly_whichever_columns_are_alike(engine, rows) -> None:
    _fresh(engine)
    keyed = [{"key": f"k{i:02d}", **row} for i, row in enumerate(rows)]
    with engine.begin() as connection:
        inserted = insert_new_rows(connection, PROBE, keyed, unique="key", returning=("id", "key"))
    assert sorted(key for _, key in inserted) == [row["key"] for row in keyed]
    assert [{k: v for k, v in row.items() if k != "id"} for row in _stored(engine)] == keyed


def test_rows_whose_key_is_taken_are_skipped_and_not_returned(engine) -> None:
    _fresh(engine)
    first = {
        "key": "a",
        "mood": Mood.calm,
        "count": 1,
        "note": None,
        "payload": None,
        "at": START,
        "flag": True,
    }
    with engine.begin() as connection:
        insert_new_rows(connection, PROBE, [first], unique="key", returning=("key",))
    again = [{**first, "count": 9}, {**first, "key": "b", "count": 9}]
    with engine.begin() as connection:
        inserted = insert_new_rows(connection, PROBE, again, unique="key", returning=("key",))
    assert [key for (key,) in inserted] == ["b"]
    assert [(row["key"], row["count"]) for row in _stored(engine)] == [("a", 1), ("b", 9)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=ROWS, after=ROWS)
def test_updated_rows_each_get_their_own_values_and_the_others_stay(engine, before, after) -> None:
    _fresh(engine)
    keyed = [{"key": f"k{i:02d}", **row} for i, row in enumerate(before)]
    with engine.begin() as connection:
        ids = {
            key: i
            for i, key in insert_new_rows(connection, PROBE, keyed, unique="key", returning=("id", "key"))
        }
    changed = [{"id": ids[row["key"]], **new} for row, new in zip(keyed, after, strict=False)]
    with engine.begin() as connection:
        update_rows(connection, PROBE, changed)
    expected = [{**row, **new} for row, new in zip(keyed, after, strict=False)] + keyed[len(changed) :]
    assert [{k: v for k, v in row.items() if k != "id"} for row in _stored(engine)] == expected


# Text the array literal must carry as it is: quotes, backslashes, braces, commas, spaces, "NULL".
AWKWARD = st.text(alphabet=st.sampled_from(list('ab"\\{},  NUL\u00fc\u20ac\t')), max_size=8)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.lists(AWKWARD, max_size=8, unique=True), asked=st.lists(AWKWARD, max_size=8))
def test_lookups_and_deletes_by_key_find_exactly_the_rows_asked_for(engine, keys, asked) -> None:
    _fresh(engine)
    with engine.begin() as connection:
        insert_rows(connection, PROBE, [{"key": key, "mood": Mood.calm, "flag": True} for key in keys])
    lookup = sa.select(PROBE.c.key)
    with engine.connect() as connection:
        found = [key for (key,) in select_in(connection, lookup, PROBE.c.key, asked, pg_type="text")]
        pairs = [(key, "calm") for key in asked]
        by_pair = select_pairs_in(connection, lookup, PROBE.c.key, PROBE.c.mood, pairs)
        assert sorted(key for (key,) in by_pair) == sorted(set(keys) & set(asked))
    assert sorted(found) == sorted(set(keys) & set(asked))
    with engine.begin() as connection:
        assert delete_in(connection, PROBE, PROBE.c.key, asked, pg_type="text") == len(set(keys) & set(asked))
    assert sorted(row["key"] for row in _stored(engine)) == sorted(set(keys) - set(asked))
