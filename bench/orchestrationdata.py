"""Recipients for the orchestration benchmark, written straight into a tenant database with ``COPY``.

Each profile has traits (email, first name, and ``sample`` true for one in :data:`SAMPLE_EVERY`),
an email identity and a user id (:func:`user_id_of`, for events sent through the API about it),
and a granted marketing consent for the recording channel: everyone can be sent to. No processing job runs; the rows are the ones processing would have written.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import psycopg

from bench.audiencedata import COLUMNS

SAMPLE_EVERY = 50  # profiles with the ``sample`` trait: the per-batch timing campaign's audience
CHUNK = 20_000
FIRST_NAMES = ("Camille", "Lea", "Lucas", "Hugo", "Emma", "Jonas", "Mia", "Lukas", "Sofia", "Mateo")


def psycopg_url(database_url: str) -> str:
    """A psycopg connection string from a tenant's SQLAlchemy URL."""
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


def email_of(index: int) -> str:
    """The email address of recipient ``index``."""
    return f"r{index:07d}@bench.example"


def user_id_of(index: int) -> str:
    """The user id of recipient ``index`` (``userId`` of its events)."""
    return f"u{index:07d}"


def load_recipients(
    database_url: str,
    count: int,
    channel: str,
    seed: int = 11,
    addresses: Callable[[int], Sequence[tuple[str, str]]] | None = None,
) -> float:
    """Write ``count`` sendable profiles (email identity, consent on ``channel``); the seconds taken.

    ``addresses(index)``, if given, adds identities ``(type, value)`` to recipient ``index`` (a
    channel's address identifiers), each seen a millisecond after the one before it: the first is
    the profile's address on that channel.
    """
    rng = random.Random(seed)
    started = time.perf_counter()
    moment = datetime.now(UTC)
    now = moment.isoformat(sep=" ")
    with psycopg.connect(psycopg_url(database_url)) as conn, conn.cursor() as cursor:
        for first in range(0, count, CHUNK):
            lines: dict[str, list[str]] = {"profile": [], "identity": [], "consent": []}
            for index in range(first, min(count, first + CHUNK)):
                profile_id = f"p_{rng.getrandbits(96):024x}"
                name = FIRST_NAMES[index % len(FIRST_NAMES)]
                sample = "true" if index % SAMPLE_EVERY == 0 else "false"
                traits = f'{{"email":"{email_of(index)}","first_name":"{name}","sample":{sample}}}'
                lines["profile"].append(
                    f"{profile_id}\t{now}\t{now}\t\\N\t{name}\t{traits}\t{{}}\t{now}\t{now}\n"
                )
                lines["identity"].append(f"email\t{email_of(index)}\t{profile_id}\t{profile_id}\t{now}\n")
                lines["identity"].append(f"user_id\t{user_id_of(index)}\t{profile_id}\t{profile_id}\t{now}\n")
                for order, (kind, value) in enumerate(addresses(index) if addresses else ()):
                    seen = (moment + timedelta(milliseconds=order)).isoformat(sep=" ")
                    lines["identity"].append(f"{kind}\t{value}\t{profile_id}\t{profile_id}\t{seen}\n")
                lines["consent"].append(f"{profile_id}\t{channel}\tmarketing\tt\tbench\t{now}\n")
            for table, rows in lines.items():
                with cursor.copy(f'COPY "{table}" ({COLUMNS[table]}) FROM STDIN') as copy:
                    copy.write("".join(rows))
        conn.commit()
        conn.autocommit = True
        for table in ("profile", "identity", "consent"):
            conn.execute(f'VACUUM (ANALYZE) "{table}"')  # autovacuum may be off: plan with statistics
    return time.perf_counter() - started
