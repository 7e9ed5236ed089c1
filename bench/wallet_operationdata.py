"""The wallet operation benchmark's run inside Tessera: one tenant, its members, one operation launched.

``python -m bench.wallet_operationdata --tenant SLUG --database-url URL --wallet FILE --profiles N``
runs with the installation's environment *without* ``TESSERA_REDIS_URL`` (no queue message is
sent: the launch job is run here, as a worker runs it) and prints one JSON object:

1. Setup (not timed): Apple Wallet enabled live with the test chain's .p12 (generated here; no
   device is registered, so nothing is pushed), Google Wallet enabled live (not sandbox) with the
   config read from ``FILE`` (the benchmark process's test service account and its fake's URL as
   ``api_url``); the loyalty program ``club``; an icon image; the Apple store card
   :data:`bench.passessetup.CARD` (points bound to ``loyalty.club.balance``, the member's first
   name) and a Google template of the same design.
2. Data (timed apart, not part of the figure): ``N`` profiles written with ``COPY`` (traits
   ``first_name`` and ``email``, an email and a user id identity, email marketing consent granted)
   and a ``loyalty_member`` row each with a balance (the members' sums only: no ledger behind
   them; a pass reads the balance from that row), then ``VACUUM (ANALYZE)``.
3. The operation through :mod:`core.operations.service`: a segment of everyone, step 1 (name,
   dates), 2 (both templates), 3 (personalization: name from ``traits.first_name`` with a
   fallback, points as a whole number), 4 (the segment), 5 (QR code and web button, no message
   channel, so no campaign), 6 (the reach check of step 4's page, 200 members rendered).
4. Timed: :func:`core.operations.service.launch` and its commit, then the queued job
   ``core.operations.launch`` claimed and run by :func:`core.queue.actors.execute_job` in this
   process (one thread, as one worker thread runs it), until the operation reads ``launched``.
   Phases are timed by wrapping the functions the job calls: reading the audience, per wallet
   ``issue()`` (render, check, rows added), the rest of its chunk loop (the commit that stores the
   rows), ``notify()`` and, inside it for Google, ``publish_passes`` (objects built, calls to the fake).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench.audiencedata import COLUMNS
from bench.orchestrationdata import psycopg_url
from bench.passessetup import CARD

APPLE, GOOGLE = "wallet_apple", "wallet_google"
PROGRAM_KEY = "club"
ACTOR = "bench"
CHUNK = 20_000
FIRST_NAMES = ("Camille", "Lea", "Lucas", "Hugo", "Emma", "Jonas", "Mia", "Lukas", "Sofia", "Mateo")
MEMBER_COLUMNS = (
    "program_id, profile_id, balance, earned, redeemed, expired, period, qualifying, referral_code, "
    "joined_at, updated_at"
)


# --- the data set (plain psycopg) ----------------------------------------------------------------------
def load_members(database_url: str, count: int, program_id: int, seed: int = 17) -> float:
    """Write ``count`` consented profiles, each a member of ``program_id`` with a balance; the seconds."""
    rng = random.Random(seed)
    started = time.perf_counter()
    now = datetime.now(UTC).isoformat(sep=" ")
    with psycopg.connect(psycopg_url(database_url)) as conn, conn.cursor() as cursor:
        for first in range(0, count, CHUNK):
            lines: dict[str, list[str]] = {"profile": [], "identity": [], "consent": [], "loyalty_member": []}
            for index in range(first, min(count, first + CHUNK)):
                profile_id = f"p_{rng.getrandbits(96):024x}"
                name, email = FIRST_NAMES[index % len(FIRST_NAMES)], f"w{index:07d}@bench.example"
                traits = f'{{"email":"{email}","first_name":"{name}"}}'
                lines["profile"].append(
                    f"{profile_id}\t{now}\t{now}\t\\N\t{name}\t{traits}\t{{}}\t{now}\t{now}\n"
                )
                lines["identity"].append(f"email\t{email}\t{profile_id}\t{profile_id}\t{now}\n")
                lines["identity"].append(f"user_id\tw{index:07d}\t{profile_id}\t{profile_id}\t{now}\n")
                lines["consent"].append(f"{profile_id}\temail\tmarketing\tt\tbench\t{now}\n")
                balance, code = rng.randrange(0, 5_000), f"W{index:09d}"
                lines["loyalty_member"].append(
                    f"{program_id}\t{profile_id}\t{balance}\t{balance}\t0\t0\t0\t0\t{code}\t{now}\t{now}\n"
                )
            for table, rows in lines.items():
                columns = MEMBER_COLUMNS if table == "loyalty_member" else COLUMNS[table]
                with cursor.copy(f'COPY "{table}" ({columns}) FROM STDIN') as copy:
                    copy.write("".join(rows))
        conn.commit()
        conn.autocommit = True
        for table in ("profile", "identity", "consent", "loyalty_member"):
            conn.execute(f'VACUUM (ANALYZE) "{table}"')  # autovacuum may be off: plan with statistics
    return time.perf_counter() - started


# --- inside Tessera ----------------------------------------------------------------------------------------
def setup(tenant_slug: str, google: dict[str, Any]) -> dict[str, Any]:
    """Both wallets live, the program, the icon and the two templates of the same design."""
    from sqlmodel import Session
    from tessera_wallet_apple.testchain import chain, sample_png

    from core.db.engines import control_session, tenant_engine
    from core.loyalty import programs
    from core.passes import library
    from core.plugins import get_host
    from core.tenancy.plugin_settings import save_channel_config, set_enabled
    from core.tenancy.tenants import get_tenant

    host = get_host()
    with control_session() as control:
        tenant = get_tenant(control, tenant_slug)
        for channel, config in ((APPLE, chain().p12_config()), (GOOGLE, google)):
            set_enabled(control, tenant, host, channel, True, sandbox=False)
            save_channel_config(control, tenant, host, channel, config)
        control.commit()
    with Session(tenant_engine(tenant.database), expire_on_commit=False) as session:
        program = programs.create_program(
            session, programs.ProgramIn(key=PROGRAM_KEY, name="Bench Club"), ACTOR
        )
        icon = library.add_image(session, "icon", "icon.png", sample_png(120, 120))
        design = {**CARD, "images": {"icon": icon.id}}
        apple = library.save_template(session, key="club_card", name="Club card", channel=APPLE,
                                      design=design, by=ACTOR)  # fmt: skip
        google_card = library.save_template(session, key="club_google", name="Club card (Google)",
                                            channel=GOOGLE, design=design, by=ACTOR)  # fmt: skip
        session.commit()
        return {"program_id": program.id, "apple_template_id": apple.id, "google_template_id": google_card.id}


def prepare(tenant_slug: str, made: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The segment and the operation, steps 1 to 6; its id and step 6's reach check."""
    from sqlmodel import Session

    from core.db.engines import control_session, tenant_engine
    from core.operations import service
    from core.operations.audience import estimate
    from core.operations.personalization import Binding, save_personalization
    from core.segments.service import create_segment, tenant_scope
    from core.tenancy.tenants import get_tenant

    with control_session() as control:
        tenant = get_tenant(control, tenant_slug)
        scope = tenant_scope(control, tenant)
    with Session(tenant_engine(tenant.database), expire_on_commit=False) as session:
        segment = create_segment(session, "Everyone", {"all": []}, ACTOR, scope.conditions)
        operation = service.save_basics(session, ACTOR, "Winter club", "Every member carries the card",
                                        "2026-12-01", "2026-12-31")  # fmt: skip
        service.save_templates(
            session, operation, made["apple_template_id"], made["google_template_id"], ACTOR
        )
        bindings = {"name": Binding("traits.first_name", "text", "Member"),
                    "points": Binding(f"loyalty.{PROGRAM_KEY}.balance", "number", "0")}  # fmt: skip
        save_personalization(session, tenant_slug, operation, bindings, ACTOR)
        service.save_audience(session, operation, segment.id, ACTOR)
        service.save_distribution(session, operation, [], True, True, list(scope.channels), ACTOR)
        session.commit()
        reach = estimate(session, tenant, scope, operation)
        assert operation.id is not None
        checked = {w.channel: {"checked": w.checked, "reachable": w.reachable, "unavailable": w.unavailable,
                               "reasons": w.reasons} for w in reach.wallets}  # fmt: skip
        return operation.id, {"size": reach.size, "wallets": checked}


# The last Google pass issued: its serial (the object id at Google), the member's balance and first name.
SPOT_SQL = """
SELECT w.serial, m.balance, p.traits ->> 'first_name' FROM wallet_pass w
JOIN loyalty_member m ON m.profile_id = w.profile_id JOIN profile p ON p.id = w.profile_id
WHERE w.channel = :channel ORDER BY w.id DESC LIMIT 1
"""


class Phases:
    """Wall time of the functions the launch job calls, per wallet (the one being issued)."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: defaultdict[str, int] = defaultdict(int)
        self.wallet = ""

    def wrap(
        self, owner: Any, attribute: str, phase: str, sets_wallet: Callable[..., str] | None = None
    ) -> None:
        """Replace ``owner.attribute`` by a timed version, adding to ``<wallet> <phase>``."""
        original: Callable[..., Any] = getattr(owner, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            if sets_wallet is not None:
                self.wallet = sets_wallet(*args)
            name = f"{self.wallet} {phase}".strip()
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.calls[name] += 1

        setattr(owner, attribute, timed)


def launch(tenant_slug: str, operation_id: int) -> dict[str, Any]:
    """Launch the operation and run its job here; the times and what the job counted."""
    import sqlalchemy as sa
    from sqlmodel import Session, select
    from tessera_wallet_google.channel import GoogleWalletChannel

    from core.db.engines import control_session, tenant_engine
    from core.operations import jobs, service
    from core.operations.models import OperationState, PassOperation
    from core.queue.actors import execute_job
    from core.queue.models import Job
    from core.tenancy.tenants import get_tenant

    phases = Phases()
    phases.wrap(jobs, "members", "audience")
    phases.wrap(jobs, "_issue_all", "all", sets_wallet=lambda tenant, engine, channel, *rest: channel)
    phases.wrap(jobs, "issue", "issue")
    phases.wrap(jobs, "notify", "notify")
    phases.wrap(GoogleWalletChannel, "publish_passes", "publish")
    with control_session() as control:
        tenant = get_tenant(control, tenant_slug)
    engine = tenant_engine(tenant.database)
    with Session(engine, expire_on_commit=False) as session:
        operation = service.get_operation(session, operation_id)
        started = time.perf_counter()
        started_at = time.time()
        service.launch(session, tenant_slug, operation, ACTOR)
        session.commit()
        job = session.exec(
            select(Job).where(Job.idempotency_key == f"pass-operation-launch:{operation_id}")
        ).one()
    queued = time.perf_counter()
    status = execute_job(tenant_slug, job.id or 0)
    with Session(engine) as session:
        operation = session.get(PassOperation, operation_id)
        assert operation is not None
        state, counts = operation.state, dict(operation.counts)
    seconds = time.perf_counter() - started
    with Session(engine) as session:
        rows = session.connection().execute(sa.text(
            "SELECT w.channel, a.kind, count(*) FROM pass_activity a JOIN wallet_pass w ON w.serial = a.serial "
            "GROUP BY w.channel, a.kind")).all()  # fmt: skip
        passes = (
            session.connection()
            .execute(sa.text("SELECT channel, count(*) FROM wallet_pass GROUP BY channel"))
            .all()
        )
        spot = session.connection().execute(sa.text(SPOT_SQL), {"channel": GOOGLE}).first()
    return {
        "seconds": seconds, "launch_s": queued - started, "started_at": started_at, "finished_at": time.time(),
        "job_status": str(status), "state": str(state), "launched": state == OperationState.launched,
        "counts": counts, "phases_s": dict(phases.seconds), "calls": dict(phases.calls),
        "activity": {f"{channel} {kind}": int(n) for channel, kind, n in rows},
        "passes": {str(channel): int(n) for channel, n in passes},
        "spot": None if spot is None else {"serial": spot[0], "balance": int(spot[1]), "first_name": spot[2]},
    }  # fmt: skip


def main() -> None:
    """Parse the options, set up, load, prepare and launch; print the JSON result."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--wallet", required=True, type=Path, help="JSON file of the Google Wallet config")
    parser.add_argument("--profiles", required=True, type=int)
    args = parser.parse_args()
    from core.plugins import get_host

    get_host()  # loads the plugins, as a worker has
    made = setup(args.tenant, json.loads(args.wallet.read_text()))
    load_s = load_members(args.database_url, args.profiles, int(made["program_id"]))
    operation_id, reach = prepare(args.tenant, made)
    result = launch(args.tenant, operation_id)
    print(json.dumps({**result, "load_s": load_s, "reach": reach, "profiles": args.profiles}))


if __name__ == "__main__":
    main()
