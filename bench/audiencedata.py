"""The audiences data set: a PostgreSQL installation with one tenant of many customers, built once, kept.

:func:`dataset` returns an installation (control database ``tessera_bench_audiences_<P>_<E>``,
tenant ``bench``) whose tenant database holds ``P`` profiles and ``E`` events, written straight
into the migrated tables with ``COPY`` (no processing job runs): each profile with traits
(email, first name, country, plan, birthday, sign-up date, age), one email identity, consent
for email and sometimes WhatsApp, and processed ``track`` events over the last 365 days, more of
them recent, at least one ``Order Completed`` each (every profile is a buyer). Rows are made a
chunk of profiles at a time from a seeded :class:`random.Random` and streamed, events of a chunk in
time order as they would have arrived.

Building is slow at full size (tens of millions of rows), so the databases are kept: a comment
on the control database marks a complete build and its sizes, and a later run with the same
sizes only migrates it to the newest schema (``tessera migrate``). ``--rebuild`` drops and
builds again. All times are relative to the build's reference time ("now" of the build), which
the benchmarks use as their clock, so a kept data set gives the same figures on a later day.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from bench.installation import DATABASE_PREFIX, POSTGRES, POSTGRES_REDIS, TESSERA, Installation, base_env
from bench.report import progress

GENERATOR = 1  # bump when the rows change: kept data sets of another generator are rebuilt
SLUG = "bench"
SEED = 4
CHUNK_PROFILES = 10_000
DAY_S = 86_400
HISTORY_DAYS = 365
SECRET_KEY = "tessera-bench-audiences-secret-key-not-for-production"
TABLES = ("profile", "identity", "consent", "consent_change", "event")
COUNTRIES = (("FR", 30), ("DE", 20), ("GB", 14), ("ES", 12), ("IT", 12), ("US", 12))
PLANS = (("free", 70), ("pro", 22), ("team", 8))
FIRST_NAMES = ("Camille", "Lea", "Lucas", "Hugo", "Emma", "Jonas", "Mia", "Lukas", "Sofia", "Mateo",
               "Lucia", "Giulia", "Marco", "Olivia", "Jack", "Amelia", "Noah", "Ava", "Liam", "Chloe")  # fmt: skip
EVENT_MIX = (("Page Viewed", 34), ("Product Viewed", 30), ("Product Added", 9), ("Checkout Started", 4),
             ("Email Opened", 14), ("Email Clicked", 5), ("Products Searched", 4))  # fmt: skip
CATEGORIES = ("apparel", "shoes", "accessories", "outdoor", "home")
PATHS = ("/", "/c/apparel", "/c/shoes", "/search", "/cart", "/help/shipping")
CAMPAIGNS = ("spring-sale", "newsletter", "win-back", "new-arrivals")
ORDER_EXTRA_MEAN = 0.8  # orders beyond the first, on average
CONSENT_CHANNELS = (("email", 0.85, 0.75), ("whatsapp", 0.3, 0.6))  # channel, share asked, share granted

# COPY text format: tab-separated, \N for NULL. Every value below is ASCII without tabs,
# newlines or backslashes, so nothing needs escaping.
COLUMNS = {
    "profile": "id, created_at, updated_at, merged_into, display_name, traits, trait_times, first_seen, last_seen",
    "identity": "type, value, profile_id, origin_profile_id, first_seen",
    "consent": "profile_id, channel, purpose, granted, source, at",
    "consent_change": "profile_id, channel, purpose, granted, source, at, event_id, recorded_at",
    "event": "message_id, type, user_id, anonymous_id, event, properties, traits, context, integrations, "
    "timestamp, received_at, source, status, profile_id",
}


@dataclass(frozen=True)
class Dataset:
    """A built data set: the installation to run Tessera against, its clock, and how it was built."""

    installation: Installation
    tenant: str
    now: datetime  # the build's reference time: the clock of every benchmark on it
    profiles: int
    events: int
    orders: int
    build_seconds: float
    reused: bool


@dataclass
class Counts:
    """Rows written so far."""

    profiles: int = 0
    events: int = 0
    orders: int = 0
    consents: int = 0


@dataclass
class Chunk:
    """The COPY text of one chunk of profiles, per table (events in time order)."""

    lines: dict[str, list[str]] = field(default_factory=lambda: {table: [] for table in TABLES})
    events: list[tuple[int, str]] = field(default_factory=list)
    consents: int = 0


def control_database(profiles: int, events: int) -> str:
    """The name of the kept control database for these sizes."""
    return f"{DATABASE_PREFIX}audiences_{profiles}_{events}"


def _admin() -> psycopg.Connection[Any]:
    return psycopg.connect(f"{POSTGRES}/postgres", autocommit=True)


def _marker(database: str) -> dict[str, Any] | None:
    """The completion marker of a kept build (None when the database or the marker is missing)."""
    with _admin() as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
    if row is None or not row[0]:
        return None
    try:
        return dict(json.loads(row[0]))
    except ValueError:
        return None


def _drop(names: Sequence[str]) -> None:
    """Drop these databases (exact names, each a ``tessera_bench_`` one) if they exist."""
    with _admin() as conn:
        for name in names:
            if not name.startswith(DATABASE_PREFIX):
                raise ValueError(f"refusing to drop {name}: not a {DATABASE_PREFIX}* database")
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _installation(control: str, data_dir: Path) -> Installation:
    env = base_env(data_dir)
    env.update({"TESSERA_DATABASE_URL": f"{POSTGRES}/{control}", "TESSERA_SECRET_KEY": SECRET_KEY})
    return Installation(POSTGRES_REDIS, data_dir, env, control)


def tenant_database(control: str) -> str:
    """The tenant database's name (as ``core.db.engines.tenant_database_name`` makes it)."""
    return f"{control}_t_{SLUG}"


@contextmanager
def dataset(profiles: int, events: int, rebuild: bool = False) -> Iterator[Dataset]:
    """The data set of these sizes, built unless a complete one is kept (or ``rebuild``)."""
    if events < profiles:
        raise ValueError("every profile has at least one order: events must be at least profiles")
    control = control_database(profiles, events)
    with tempfile.TemporaryDirectory(prefix="tessera-bench-audiences-") as folder:
        inst = _installation(control, Path(folder))
        marker = None if rebuild else _marker(control)
        if marker is not None and (marker.get("generator"), marker.get("complete")) != (GENERATOR, True):
            marker = None
        if marker is None:
            marker = build(inst, profiles, events)
        else:
            progress(f"audiences: reusing {control} (built in {marker['build_seconds']:.0f} s); migrating")
            subprocess.run([TESSERA, "migrate"], env=inst.env, check=True, capture_output=True)
            vacuum(control)  # a migration may have rewritten a table (and dropped its statistics)
        yield Dataset(
            installation=inst, tenant=SLUG, now=datetime.fromisoformat(marker["now"]), profiles=profiles,
            events=events, orders=int(marker["orders"]), build_seconds=float(marker["build_seconds"]),
            reused=not marker.get("fresh", False),
        )  # fmt: skip


def vacuum(control: str, tables: Sequence[str] = ()) -> None:
    """``VACUUM (ANALYZE)`` these tables of the tenant database (default: all of them).

    Autovacuum may be off on the benchmark's server (it is on the development machine); the
    benchmarks vacuum where it would have, so a table bloated by an earlier run slows nothing.
    """
    with psycopg.connect(f"{POSTGRES}/{tenant_database(control)}", autocommit=True) as conn:
        for table in tables or [""]:
            conn.execute(f'VACUUM (ANALYZE) "{table}"' if table else "VACUUM (ANALYZE)")


def build(inst: Installation, profiles: int, events: int) -> dict[str, Any]:
    """Create the installation and tenant, load every table, analyse; the completion marker."""
    assert inst.control_database is not None
    control, started = inst.control_database, time.perf_counter()
    _drop([tenant_database(control), control])
    progress(f"audiences: building {control}: {profiles:,} profiles, {events:,} events")
    subprocess.run([TESSERA, "tenant", "create", SLUG, "--admin-email", "bench@tessera.test",
                    "--admin-password", "bench-password", "--json"],
                   env=inst.env, check=True, capture_output=True)  # fmt: skip
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with psycopg.connect(f"{POSTGRES}/{tenant_database(control)}") as conn:
        counts = load(conn, profiles, events, now)
    progress(f"audiences: loaded in {time.perf_counter() - started:.0f} s; vacuum and analyse")
    vacuum(control)
    marker = {"complete": True, "generator": GENERATOR, "profiles": counts.profiles, "events": counts.events,
              "orders": counts.orders, "now": now.isoformat(), "build_seconds": time.perf_counter() - started}  # fmt: skip
    with _admin() as conn:
        conn.execute(f"COMMENT ON DATABASE \"{control}\" IS '{json.dumps(marker)}'")
    progress(f"audiences: built in {marker['build_seconds']:.0f} s ({counts.orders:,} orders)")
    return {**marker, "fresh": True}


def load(conn: psycopg.Connection[Any], profiles: int, events: int, now: datetime) -> Counts:
    """Write every row in one transaction (COPY FREEZE into the emptied tables, secondary indexes
    dropped during the load and created again after it)."""
    conn.execute("SET maintenance_work_mem = '1GB'")
    conn.execute(f"TRUNCATE {', '.join(TABLES)}")
    recreate = _drop_secondary_indexes(conn)
    rng = random.Random(SEED)
    counts, started, reported = Counts(), time.perf_counter(), time.perf_counter()
    per_profile = event_counts(rng, profiles, events)
    for first in range(0, profiles, CHUNK_PROFILES):
        chunk = make_chunk(rng, first, per_profile[first : first + CHUNK_PROFILES], now, counts)
        _copy_chunk(conn, chunk)
        counts.consents += chunk.consents
        if time.perf_counter() - reported > 30:
            reported = time.perf_counter()
            rate = counts.events / (reported - started)
            progress(
                f"audiences: {counts.profiles:,} profiles, {counts.events:,} events ({rate:,.0f} events/s)"
            )
    progress(f"audiences: rows written in {time.perf_counter() - started:.0f} s; creating indexes")
    for statement in recreate:
        conn.execute(statement)
    conn.commit()
    return counts


def _drop_secondary_indexes(conn: psycopg.Connection[Any]) -> list[str]:
    """Drop the unique constraints and indexes (not primary keys) of the loaded tables; the
    statements that create them again, as the migrations made them."""
    statements = []
    for table in TABLES:
        constraints = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'u'",
            (table,),
        ).fetchall()
        for name, definition in constraints:
            conn.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
            statements.append(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
        indexes = conn.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = %s::regclass AND NOT x.indisprimary",
            (table,),
        ).fetchall()
        for name, definition in indexes:
            conn.execute(f'DROP INDEX "{name}"')
            statements.append(definition)
    return statements


def _copy_chunk(conn: psycopg.Connection[Any], chunk: Chunk) -> None:
    chunk.events.sort(key=lambda item: item[0])
    chunk.lines["event"] = [line for _, line in chunk.events]
    with conn.cursor() as cursor:
        for table in TABLES:
            with cursor.copy(f'COPY "{table}" ({COLUMNS[table]}) FROM STDIN WITH (FREEZE)') as copy:
                copy.write("".join(chunk.lines[table]))


def event_counts(rng: random.Random, profiles: int, events: int) -> list[int]:
    """Events per profile (at least one each, exponentially spread), adding up to ``events``."""
    extra_mean = (events - profiles) / profiles
    counts = [1 + (int(rng.expovariate(1 / extra_mean)) if extra_mean > 0 else 0) for _ in range(profiles)]
    difference = events - sum(counts)
    while difference:
        index = rng.randrange(profiles)
        if difference > 0:
            counts[index] += 1
            difference -= 1
        elif counts[index] > 1:
            counts[index] -= 1
            difference += 1
    return counts


def _weights(pairs: Sequence[tuple[str, int]]) -> tuple[list[str], list[int]]:
    names, cumulative, total = [], [], 0
    for name, weight in pairs:
        total += weight
        names.append(name)
        cumulative.append(total)
    return names, cumulative


COUNTRY_CHOICES, PLAN_CHOICES, EVENT_CHOICES = _weights(COUNTRIES), _weights(PLANS), _weights(EVENT_MIX)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(sep=" ")


def make_chunk(
    rng: random.Random, first: int, per_profile: Sequence[int], now: datetime, counts: Counts
) -> Chunk:
    """The rows of the profiles ``first``, ``first + 1``, ... with these event counts."""
    chunk, now_s = Chunk(), now.timestamp()
    for offset, n_events in enumerate(per_profile):
        index = first + offset
        profile_id = f"p_{rng.getrandbits(96):024x}"
        times = _event_times(rng, n_events, now_s)
        first_s, last_s = min(times), max(times)
        _person_rows(rng, chunk, index, profile_id, first_s, last_s, now)
        _event_rows(rng, chunk, index, profile_id, times, counts)
        counts.profiles += 1
    return chunk


def _event_times(rng: random.Random, n_events: int, now_s: float) -> list[float]:
    """When one person's events happened: between a first visit (any day of the year) and a last
    activity that is usually recent, most of them near the latter."""
    first_age = HISTORY_DAYS * rng.random()
    last_age = first_age * rng.random() ** 3
    span = first_age - last_age
    return [now_s - DAY_S * (last_age + span * rng.random() ** 2) for _ in range(n_events)]


def _person_rows(
    rng: random.Random,
    chunk: Chunk,
    index: int,
    profile_id: str,
    first_s: float,
    last_s: float,
    now: datetime,
) -> None:
    """The profile, its email identity, its consents (current and history)."""
    first_name = FIRST_NAMES[index % len(FIRST_NAMES)]
    email = f"customer{index:08d}@bench.example"
    born = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 56))
    age = now.year - born.year - ((now.month, now.day) < (born.month, born.day))
    signed_up = datetime.fromtimestamp(first_s - DAY_S * rng.random() * 30, UTC).date()
    country = rng.choices(COUNTRY_CHOICES[0], cum_weights=COUNTRY_CHOICES[1])[0]
    plan = rng.choices(PLAN_CHOICES[0], cum_weights=PLAN_CHOICES[1])[0]
    traits = (f'{{"email":"{email}","first_name":"{first_name}","country":"{country}","plan":"{plan}",'
              f'"birthday":"{born.isoformat()}","signed_up_at":"{signed_up.isoformat()}","age":{age}}}')  # fmt: skip
    first, last = _iso(first_s), _iso(last_s)
    chunk.lines["profile"].append(
        f"{profile_id}\t{first}\t{last}\t\\N\t{first_name}\t{traits}\t{{}}\t{first}\t{last}\n"
    )
    chunk.lines["identity"].append(f"email\t{email}\t{profile_id}\t{profile_id}\t{first}\n")
    for channel, asked, granted_share in CONSENT_CHANNELS:
        if rng.random() < asked:
            granted = "t" if rng.random() < granted_share else "f"
            at = _iso(first_s + (last_s - first_s) * rng.random())
            chunk.lines["consent"].append(f"{profile_id}\t{channel}\tmarketing\t{granted}\tbench\t{at}\n")
            chunk.consents += 1
            chunk.lines["consent_change"].append(
                f"{profile_id}\t{channel}\tmarketing\t{granted}\tbench\t{at}\t\\N\t{at}\n"
            )


def _event_rows(
    rng: random.Random, chunk: Chunk, index: int, profile_id: str, times: list[float], counts: Counts
) -> None:
    """One person's events: at least one order (a ``Order Completed`` with revenue), the rest a mix."""
    orders = min(len(times), 1 + int(rng.expovariate(1 / ORDER_EXTRA_MEAN)))
    names = ["Order Completed"] * orders + rng.choices(EVENT_CHOICES[0], cum_weights=EVENT_CHOICES[1],
                                                       k=len(times) - orders)  # fmt: skip
    spend = math.exp(math.log(50) + 0.6 * rng.gauss(0, 1))
    anonymous_id = f"a-{index:08d}"
    for name, at in zip(names, times, strict=True):
        if name == "Order Completed":
            revenue = round(spend * math.exp(0.3 * rng.gauss(0, 1)), 2)
            properties = f'{{"order_id":"o{counts.orders:09d}","revenue":{revenue},"currency":"EUR"}}'
            counts.orders += 1
        else:
            properties = _properties(rng, name)
        line = (f"{rng.getrandbits(128):032x}\ttrack\t\\N\t{anonymous_id}\t{name}\t{properties}\t{{}}\t{{}}\t{{}}\t"
                f"{_iso(at)}\t{_iso(at + 1.5)}\tapi\tprocessed\t{profile_id}\n")  # fmt: skip
        chunk.events.append((int(at), line))
    counts.events += len(times)


def _properties(rng: random.Random, name: str) -> str:
    """Small properties of the events that are not orders."""
    if name == "Page Viewed":
        return f'{{"path":"{rng.choice(PATHS)}"}}'
    if name.startswith("Email"):
        return f'{{"campaign":"{rng.choice(CAMPAIGNS)}"}}'
    if name == "Products Searched":
        return f'{{"query":"{rng.choice(CATEGORIES)}"}}'
    return f'{{"category":"{rng.choice(CATEGORIES)}","price":{rng.randrange(10, 200)}.0}}'
