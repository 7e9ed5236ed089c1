"""Timers and exactly-once: the same due entry advanced by two workers at once, or by a timer job
run again, sends once; timers live in the database and survive a restart; a large backlog fans
out into shards that all advance once."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from core.db import engines
from core.journeys import jobs, service
from core.journeys import timers as timer_module
from core.journeys.models import EntryState, Journey
from core.journeys.run import ADVANCE_TIMERS, Runtime
from core.journeys.timers import advance_due
from core.journeys.triggers import enter_by_dates
from core.plugins import reset_host
from core.queue.models import Job
from tests.journeys.conftest import (
    TENANT,
    customers,
    definition,
    deliveries,
    entries,
    make_journey,
    path,
    send_step,
)

BIRTHDAY = {"type": "date", "trait": "birthday", "annual": True, "at": "00:00"}
TODAY = datetime.now(UTC)


def _waiting(shop, count: int, seconds: int = 60) -> int:
    """``count`` customers entered into a journey that waits ``seconds`` then sends; its id."""
    customers(shop, *[f"u{i}" for i in range(count)], birthday=TODAY.strftime("1990-%m-%d"))
    spec = definition(BIRTHDAY, {"s1": {"type": "wait", "seconds": seconds, "next": "s2"}, "s2": send_step()})
    journey = make_journey(shop, spec, name="Birthday")
    assert enter_by_dates(Runtime.load(TENANT)) == count
    assert {e.state for e in entries(shop, journey.id)} == {EntryState.waiting}
    assert journey.id is not None
    return journey.id


def test_two_workers_advancing_the_same_due_entries_at_once_send_each_message_once(shop) -> None:
    journey_id = _waiting(shop, 40)
    runtime = Runtime.load(TENANT)
    later = datetime.now(UTC) + timedelta(seconds=61)
    start = threading.Barrier(2)
    advanced: list[int] = []

    def worker() -> None:
        start.wait()
        advanced.append(advance_due(runtime, now=later))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(advanced) == 40
    sent = deliveries(shop, journey_id)
    assert len(sent) == 40 and len({d.entry_id for d in sent}) == 40
    assert all(path(shop, e) == [("s1", "waited"), ("s2", "sent")] for e in entries(shop, journey_id))
    # The timer job run again (a redelivered message, a sweeper re-send) finds nothing to do.
    assert advance_due(runtime, now=later) == 0
    jobs.advance_timers(TENANT, {})
    assert len(deliveries(shop, journey_id)) == 40


def test_timers_survive_a_restart(shop) -> None:
    journey_id = _waiting(shop, 3, seconds=1)
    time.sleep(1.2)
    # A new process: no engine, no plugin host, nothing in memory; only the database remains.
    engines.dispose_engines()
    reset_host()
    jobs.tick(TENANT, {})
    assert {e.state for e in entries(shop, journey_id)} == {EntryState.completed}
    assert len(deliveries(shop, journey_id)) == 3


def test_waits_queue_a_timer_job_for_when_they_end(sqlite_shop) -> None:
    shop = sqlite_shop
    journey_id = _waiting(shop, 2, seconds=120)
    due = {e.due_at for e in entries(shop, journey_id)}
    planned = shop.session.exec(select(Job).where(Job.kind == ADVANCE_TIMERS)).all()
    assert planned and max(j.due_at for j in planned) >= max(due)  # type: ignore[type-var]
    assert max(j.due_at for j in planned) - max(due) <= timedelta(seconds=5)  # type: ignore[operator]


def test_a_large_backlog_fans_out_into_shards_that_each_advance_once(
    sqlite_shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = sqlite_shop
    monkeypatch.setattr(timer_module, "FAN_OUT", 10)
    journey_id = _waiting(shop, 35, seconds=1)
    time.sleep(1.2)
    jobs.advance_timers(TENANT, {})
    shards = shop.session.exec(select(Job).where(Job.kind == ADVANCE_TIMERS, Job.status == "pending")).all()
    assert sorted(j.payload.get("shard") for j in shards if "shard" in j.payload) == [0, 1, 2, 3]
    shop.run_jobs()
    assert {e.state for e in entries(shop, journey_id)} == {EntryState.completed}
    assert len(deliveries(shop, journey_id)) == 35


def test_two_concurrent_triggers_open_one_pass_for_a_profile(shop) -> None:
    (ann,) = customers(shop, "ann")
    spec = definition({"type": "api"}, {"s1": {"type": "wait", "seconds": 60, "next": None}},
                      reentry={"mode": "after_exit"})  # fmt: skip
    journey = make_journey(shop, spec, name="Once at a time")
    start = threading.Barrier(4)
    results: list[bool] = []

    def trigger() -> None:
        with Session(engines.tenant_engine(shop.database), expire_on_commit=False) as session:
            mine = session.get(Journey, journey.id)
            start.wait()
            results.append(service.enter(session, shop.tenant, shop.scope(), mine, ann, {}) is not None)
            session.commit()

    threads = [threading.Thread(target=trigger) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, False, True]
    assert len(entries(shop, journey.id)) == 1
