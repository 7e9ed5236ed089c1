"""The loyalty benchmark's data set and program, and the work it runs inside Tessera.

Written from the benchmark process (plain ``psycopg``, no Tessera import): :func:`load_purchases`
puts ``profiles`` profiles (traits: email, first name, ``vip`` true for one in 20; a ``user_id``
identity) and ``events`` processed ``track`` events with their ``profile_id`` straight into the
tenant's ``profile``, ``identity`` and ``event`` tables with ``COPY``, as processing would have
left them: ``Order Completed`` (unique ``order_id``, ``revenue``, ``currency`` mostly EUR, a
``category``, a ``coupon`` on some) and, for :data:`REFUND_SHARE` of the events, ``Order Refunded``
of an earlier order of the same profile (some partial, carrying the refunded ``revenue``). The
events are spread over the :data:`HISTORY_DAYS` days before the reference time ("now"), written in
time order (ids follow time, as they would have arrived); buyers are skewed (some buy much more).

Run inside Tessera (``python -m bench.loyaltydata JOB --tenant SLUG ...``, the installation's
environment; prints one JSON object; Tessera is imported before any clock starts):

- ``setup --now ISO``: the program (:func:`core.loyalty.programs.create_program`), three tiers and
  the ten rules of :func:`rules`, each activated and dated :data:`ACTIVATED_DAYS` days before
  ``now`` (before every event); the refund events are the program's defaults.
- ``phases --chunks N``: partition 0's first ``N`` chunks of :data:`core.loyalty.engine.CHUNK`
  events applied one after the other in this process as :func:`core.loyalty.engine.apply_events`
  does (read, :func:`~core.loyalty.engine.apply_rows`, commit; cursors untouched), each phase
  timed. The caller clears what they wrote.
- ``queue``: in one transaction, every loyalty cursor back to the stream's start and
  :func:`core.loyalty.engine.queue_apply`; the wall-clock times before it and after the commit.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from bench.audiencedata import COLUMNS
from bench.orchestrationdata import psycopg_url

SEED = 7
HISTORY_DAYS = 90
ACTIVATED_DAYS = HISTORY_DAYS + 1  # the rules were activated before the first event
PURCHASE, REFUND = "Order Completed", "Order Refunded"
REFUND_SHARE = 0.02  # of the events; a fifth of them partial
PARTIAL_SHARE = 0.2
VIP_EVERY = 20
COUPON_SHARE = 0.15
REFUNDABLE_KEPT = 50_000  # earlier orders a refund is drawn from (a random sample of them)
CURRENCIES = (("EUR", 85), ("GBP", 8), ("USD", 7))
CATEGORIES = (("apparel", 30), ("shoes", 20), ("accessories", 20), ("outdoor", 15), ("home", 15))
COUPONS = ("WELCOME10", "SPRING15", "FREESHIP", "VIP20")
FIRST_NAMES = ("Camille", "Lea", "Lucas", "Hugo", "Emma", "Jonas", "Mia", "Lukas", "Sofia", "Mateo")
PROGRAM_KEY = "club"
ACTOR = "bench"
TIERS = (("Member", 0, 1.0), ("Silver", 1_000, 1.25), ("Gold", 3_000, 1.5))


@dataclass
class Loaded:
    """What :func:`load_purchases` wrote, and how long it took."""

    profiles: int = 0
    events: int = 0
    orders: int = 0
    refunds: int = 0
    partial_refunds: int = 0
    seconds: float = 0.0


def _cumulative(pairs: tuple[tuple[str, int], ...]) -> tuple[list[str], list[int]]:
    names, weights, total = [], [], 0
    for name, weight in pairs:
        total += weight
        names.append(name)
        weights.append(total)
    return names, weights


def _iso(moment: datetime) -> str:
    return moment.isoformat(sep=" ")


def rules(now: datetime) -> list[dict[str, Any]]:
    """The ten earning rules (as :class:`core.loyalty.programs.RuleIn` fields), all on purchases."""
    on = {"event": PURCHASE}
    week = {
        "starts_at": (now - timedelta(days=30)).isoformat(),
        "ends_at": (now - timedelta(days=23)).isoformat(),
    }
    return [
        {**on, "name": "1 point per euro", "kind": "per_amount", "points": 1,
         "where": [{"key": "currency", "op": "=", "value": "EUR"}]},
        {**on, "name": "1 point per pound or dollar", "kind": "per_amount", "points": 1,
         "where": [{"key": "currency", "op": "in", "value": ["GBP", "USD"]}]},
        {**on, "name": "10 points per order", "kind": "fixed", "points": 10},
        {**on, "name": "Big basket bonus", "kind": "fixed", "points": 50, "tier_multiplier": False,
         "where": [{"key": "revenue", "op": ">=", "value": 100}]},
        {**on, "name": "Outdoor and shoes", "kind": "fixed", "points": 20,
         "where": [{"key": "category", "op": "in", "value": ["outdoor", "shoes"]}]},
        {**on, "name": "Coupon orders", "kind": "fixed", "points": 15,
         "where": [{"key": "coupon", "op": "is set"}]},
        {**on, "name": "Apparel: 2 points per euro, 100 a day at most", "kind": "per_amount", "points": 2,
         "cap_per_day": 100, "where": [{"key": "category", "op": "=", "value": "apparel"}]},
        {**on, "name": "VIP bonus", "kind": "fixed", "points": 25,
         "profile_rule": {"type": "trait", "key": "vip", "op": "=", "value": True}},
        {**on, "name": "Double points week", "kind": "multiplier", "points": 2, **week},
        {**on, "name": "Accessories: 1.5 times the points", "kind": "multiplier", "points": 1.5,
         "where": [{"key": "category", "op": "=", "value": "accessories"}]},
    ]  # fmt: skip


# --- the data set (benchmark process) ---------------------------------------------------------------
def _profile_rows(rng: random.Random, count: int, since: datetime) -> tuple[list[str], list[str], list[str]]:
    """Profile ids, and the COPY lines of ``profile`` and ``identity``."""
    ids, profiles, identities = [], [], []
    first_seen = _iso(since - timedelta(days=30))
    for index in range(count):
        profile_id = f"p_{rng.getrandbits(96):024x}"
        name = FIRST_NAMES[index % len(FIRST_NAMES)]
        vip = "true" if index % VIP_EVERY == 0 else "false"
        traits = f'{{"email":"m{index:07d}@bench.example","first_name":"{name}","vip":{vip}}}'
        profiles.append(f"{profile_id}\t{first_seen}\t{first_seen}\t\\N\t{name}\t{traits}\t{{}}\t{first_seen}\t"
                        f"{first_seen}\n")  # fmt: skip
        identities.append(f"user_id\tu{index:07d}\t{profile_id}\t{profile_id}\t{first_seen}\n")
        ids.append(profile_id)
    return ids, profiles, identities


class _Purchases:
    """Makes the events in time order: orders, and refunds of earlier orders of the same buyer."""

    def __init__(self, rng: random.Random, profile_ids: list[str], loaded: Loaded) -> None:
        self.rng, self.profile_ids, self.loaded = rng, profile_ids, loaded
        self.refundable: list[tuple[int, int, float]] = []  # (order number, profile index, revenue)
        self.currencies, self.categories = _cumulative(CURRENCIES), _cumulative(CATEGORIES)

    def line(self, at: datetime) -> str:
        """The COPY line of the next event, happening at ``at``."""
        rng = self.rng
        if self.refundable and rng.random() < REFUND_SHARE:
            index, name, properties = self._refund()
        else:
            index, name, properties = self._order()
        received = at + timedelta(seconds=1.5)
        self.loaded.events += 1
        return (f"{rng.getrandbits(128):032x}\ttrack\tu{index:07d}\t\\N\t{name}\t{properties}\t{{}}\t{{}}\t{{}}\t"
                f"{_iso(at)}\t{_iso(received)}\tapi\tprocessed\t{self.profile_ids[index]}\n")  # fmt: skip

    def _order(self) -> tuple[int, str, str]:
        rng = self.rng
        index = int(len(self.profile_ids) * rng.random() ** 1.5)  # some buy much more often than others
        number = self.loaded.orders
        self.loaded.orders += 1
        revenue = round(math.exp(math.log(55) + 0.6 * rng.gauss(0, 1)), 2)
        currency = rng.choices(self.currencies[0], cum_weights=self.currencies[1])[0]
        category = rng.choices(self.categories[0], cum_weights=self.categories[1])[0]
        coupon = f',"coupon":"{rng.choice(COUPONS)}"' if rng.random() < COUPON_SHARE else ""
        properties = (f'{{"order_id":"o{number:09d}","revenue":{revenue},"currency":"{currency}",'
                      f'"category":"{category}","products":{1 + int(rng.expovariate(0.7))}{coupon}}}')  # fmt: skip
        order = (number, index, revenue)
        if len(self.refundable) < REFUNDABLE_KEPT:
            self.refundable.append(order)
        else:
            self.refundable[rng.randrange(REFUNDABLE_KEPT)] = order
        return index, PURCHASE, properties

    def _refund(self) -> tuple[int, str, str]:
        rng = self.rng
        pick = rng.randrange(len(self.refundable))
        self.refundable[pick], self.refundable[-1] = self.refundable[-1], self.refundable[pick]
        number, index, revenue = self.refundable.pop()  # an order is refunded once at most
        self.loaded.refunds += 1
        amount = ""
        if rng.random() < PARTIAL_SHARE:
            self.loaded.partial_refunds += 1
            amount = f',"revenue":{round(revenue * 0.4, 2)}'
        return index, REFUND, f'{{"order_id":"o{number:09d}","reason":"returned"{amount}}}'


def load_purchases(database_url: str, profiles: int, events: int, now: datetime, seed: int = SEED) -> Loaded:
    """Write the profiles and their purchase events (one transaction, ``COPY FREEZE`` into the
    emptied tables); what was written."""
    started = time.perf_counter()
    rng = random.Random(seed)
    loaded = Loaded(profiles=profiles)
    since = now - timedelta(days=HISTORY_DAYS)
    profile_ids, profile_lines, identity_lines = _profile_rows(rng, profiles, since)
    purchases = _Purchases(rng, profile_ids, loaded)
    per_day, extra = divmod(events, HISTORY_DAYS)
    with psycopg.connect(psycopg_url(database_url)) as conn, conn.cursor() as cursor:
        cursor.execute("TRUNCATE profile, identity, event")  # empty already; FREEZE needs it
        for table, lines in (("profile", profile_lines), ("identity", identity_lines)):
            with cursor.copy(f'COPY "{table}" ({COLUMNS[table]}) FROM STDIN WITH (FREEZE)') as copy:
                copy.write("".join(lines))
        for day in range(HISTORY_DAYS):
            start = since + timedelta(days=day)
            count = per_day + (1 if day < extra else 0)
            seconds = sorted(rng.random() * 86_400 for _ in range(count))
            lines = [purchases.line(start + timedelta(seconds=s)) for s in seconds]
            with cursor.copy(f'COPY "event" ({COLUMNS["event"]}) FROM STDIN WITH (FREEZE)') as copy:
                copy.write("".join(lines))
        conn.commit()
    loaded.seconds = time.perf_counter() - started
    return loaded


# --- inside Tessera (a subprocess with the installation's environment) -------------------------------
def _tenant(tenant_slug: str) -> tuple[Any, set[str]]:
    """The tenant row and its enabled plugins."""
    from core.db.engines import control_session
    from core.plugins import get_host
    from core.tenancy.plugin_settings import enabled_plugins
    from core.tenancy.tenants import get_tenant

    with control_session() as control:
        tenant = get_tenant(control, tenant_slug)
        return tenant, set(enabled_plugins(control, tenant, get_host()))


def setup(tenant_slug: str, now: datetime) -> dict[str, Any]:
    """The program, its tiers and its ten active rules, dated before the data."""
    from sqlmodel import Session

    from core.db.engines import tenant_engine
    from core.loyalty import programs
    from core.loyalty.models import ExpiryPolicy, RuleStatus
    from core.segments.service import conditions_for

    tenant, enabled = _tenant(tenant_slug)
    conditions = conditions_for(frozenset(enabled))
    activated = now - timedelta(days=ACTIVATED_DAYS)
    anchor = (now - timedelta(days=ACTIVATED_DAYS + 30)).date().replace(day=1)  # one tier period for the data
    with Session(tenant_engine(tenant.database), expire_on_commit=False) as session:
        body = programs.ProgramIn(key=PROGRAM_KEY, name="Bench Club", period_anchor=anchor,
                                  expiry_policy=ExpiryPolicy.rolling, expiry_months=24)  # fmt: skip
        program = programs.create_program(session, body, ACTOR)
        assert program.id is not None
        for name, threshold, multiplier in TIERS:
            programs.add_tier(session, program.id,
                              programs.TierIn(name=name, threshold=threshold, multiplier=multiplier))  # fmt: skip
        for fields in rules(now):
            rule = programs.create_rule(session, program.id, programs.RuleIn(**fields), ACTOR, conditions)
            assert rule.id is not None
            programs.set_rule_status(session, program.id, rule.id, RuleStatus.active, ACTOR)
            rule.activated_at = activated
            session.add(rule)
        session.commit()
        return {"program_id": program.id, "rules": len(rules(now)), "activated_at": activated.isoformat()}


ANALYZED = ("loyalty_applied", "loyalty_ledger", "loyalty_member", "internal_event")
# (module, function, phase): what apply_rows calls, looked up at call time, so wrapping times them.
PHASES = (
    ("core.loyalty.engine", "load_setup", "load programs and rules"),
    ("core.loyalty.engine", "_not_applied", "skip events applied before"),
    ("core.loyalty.engine", "lock_members", "lock or create members"),
    ("core.loyalty.engine", "earn", "earn (decide the rules)"),
    ("core.loyalty.engine", "reversals", "reversals (refunds)"),
    ("core.loyalty.engine", "post", "post (ledger, member sums, tiers)"),
    ("core.loyalty.challenges", "on_events", "challenges"),
    ("core.loyalty.referrals", "on_events", "referrals"),
    ("core.loyalty.events", "record", "internal events"),
    ("core.loyalty.engine", "insert_rows", "record the applied events"),
)


def phases(tenant_slug: str, chunks: int) -> dict[str, Any]:
    """Partition 0's first ``chunks`` chunks applied here, one transaction each; the phases of each.

    The tables applying writes are analysed after the first chunk (autovacuum may be off): the
    planner's statistics of empty tables pick plans that read every row for each lookup.
    """
    import importlib

    import sqlalchemy as sa
    from sqlmodel import Session

    from bench.orchestrationjobs import PhaseTimer
    from core.db.engines import tenant_engine
    from core.loyalty import engine
    from core.loyalty.state import EventRow

    tenant, enabled = _tenant(tenant_slug)
    database = tenant_engine(tenant.database)
    timer = PhaseTimer()
    for module, function, phase in PHASES:
        timer.wrap(importlib.import_module(module), function, phase)
    after, sizes = 0, []
    for _ in range(chunks):
        started = time.perf_counter()
        with Session(database, expire_on_commit=False) as session:
            setup = engine.load_setup(session, tenant, enabled)
            read = time.perf_counter()
            query = engine._rows_query(after, setup.names, 0, engine.parts_of(session))  # the job's own query
            found = list(session.connection().execute(query.limit(engine.CHUNK)))
            timer.current["read the events"] += time.perf_counter() - read
            if not found:
                break
            rows = [EventRow(r.id, r.message_id, r.event, r.profile_id, r.properties or {},
                             r.timestamp if r.timestamp.tzinfo else r.timestamp.replace(tzinfo=UTC))
                    for r in found]  # fmt: skip
            engine.apply_rows(session, setup, rows)
            committing = time.perf_counter()
            session.commit()
            timer.current["commit"] += time.perf_counter() - committing
        timer.finish(time.perf_counter() - started)
        sizes.append(len(found))
        after = found[-1].id
        if len(sizes) == 1:  # as autovacuum would: the tables now hold rows (not timed)
            with database.connect() as conn:
                conn.execute(sa.text(f"ANALYZE {', '.join(ANALYZED)}"))
                conn.commit()
    names = [phase for _, _, phase in PHASES] + ["read the events", "commit", "other", "total"]
    later = timer.jobs[1:] or timer.jobs
    median = {name: statistics.median(job.get(name, 0.0) for job in later) for name in names} if later else {}
    first = {name: timer.jobs[0].get(name, 0.0) for name in names} if timer.jobs else {}
    return {"chunks": len(timer.jobs), "sizes": sizes, "first_ms": first, "median_ms": median}


def queue(tenant_slug: str) -> dict[str, Any]:
    """Every loyalty cursor back to the start and both partitions' apply jobs queued, in one transaction."""
    from sqlmodel import Session

    from core.db.engines import tenant_engine
    from core.loyalty import engine
    from core.streams.cursor import StreamCursor

    tenant, _ = _tenant(tenant_slug)
    cursors = StreamCursor.__table__  # type: ignore[attr-defined]
    with Session(tenant_engine(tenant.database)) as session:
        started = time.time()
        session.connection().execute(
            cursors.update()
            .where(cursors.c.name.startswith("loyalty:"))
            .values(last_id=0, mark_id=0, mark_at=None)
        )
        engine.queue_apply(session, tenant.slug)
        parts = engine.parts_of(session)
        session.commit()  # the jobs' messages go to Redis here
        return {"started_at": started, "queued_at": time.time(), "parts": parts}


def main() -> None:
    """Parse the options, run the job, print its JSON result."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("job", choices=("setup", "phases", "queue"))
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--now", help="setup: the data set's reference time (ISO 8601)")
    parser.add_argument("--chunks", type=int, default=4, help="phases: chunks applied (the first warms up)")
    args = parser.parse_args()
    from core.plugins import get_host

    get_host()  # loads the plugins, as a worker has
    if args.job == "setup":
        result = setup(args.tenant, datetime.fromisoformat(args.now))
    elif args.job == "phases":
        result = phases(args.tenant, args.chunks)
    else:
        result = queue(args.tenant)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
