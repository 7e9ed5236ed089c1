"""Recipients for the orchestration benchmark, written straight into a tenant database with ``COPY``.

Each profile has traits (email, first name, and ``sample`` true for one in :data:`SAMPLE_EVERY`),
an email identity and a user id (:func:`user_id_of`, for events sent through the API about it),
and a granted marketing consent for the recording channel: everyone can be sent to. No processing job runs; the rows are the ones processing would have written.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

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


def load_recipients(database_url: str, count: int, channel: str, seed: int = 11) -> float:
    """Write ``count`` sendable profiles (email identity, consent on ``channel``); the seconds taken."""
    rng = random.Random(seed)
    started = time.perf_counter()
    now = datetime.now(UTC).isoformat(sep=" ")
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
                lines["consent"].append(f"{profile_id}\t{channel}\tmarketing\tt\tbench\t{now}\n")
            for table, rows in lines.items():
                with cursor.copy(f'COPY "{table}" ({COLUMNS[table]}) FROM STDIN') as copy:
                    copy.write("".join(rows))
        conn.commit()
        conn.autocommit = True
        for table in ("profile", "identity", "consent"):
            conn.execute(f'VACUUM (ANALYZE) "{table}"')  # autovacuum may be off: plan with statistics
    return time.perf_counter() - started
