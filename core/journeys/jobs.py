"""The durable jobs of journeys: timers (queued for when waits end), the minute tick that catches
up with the streams and overdue timers, and the hourly date triggers."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from core.journeys.run import ADVANCE_TIMERS, Runtime
from core.journeys.timers import advance_due, fan_out
from core.journeys.triggers import enter_by_dates, follow_events, follow_internal_events

log = logging.getLogger(__name__)
TICK = "core.journeys.tick"
TICK_EVERY = timedelta(minutes=1)
DATES = "core.journeys.dates"
DATES_EVERY = timedelta(hours=1)
__all__ = ["ADVANCE_TIMERS", "DATES", "DATES_EVERY", "TICK", "TICK_EVERY", "advance_timers", "dates", "tick"]


def _timers(runtime: Runtime, payload: dict[str, Any]) -> int:
    shards = int(payload.get("shards", 1))
    if shards <= 1 and fan_out(runtime):
        return 0
    return advance_due(runtime, int(payload.get("shard", 0)), max(shards, 1))


def advance_timers(tenant_slug: str, payload: dict[str, Any]) -> None:
    """Job ``core.journeys.timers``: advance the due entries (of one shard, given ``shard`` and
    ``shards``), or fan out into shards when the backlog is large."""
    advanced = _timers(Runtime.load(tenant_slug), payload)
    log.debug("journeys of %s: %d timers advanced", tenant_slug, advanced)


def tick(tenant_slug: str, payload: dict[str, Any]) -> None:
    """Job ``core.journeys.tick`` (every minute): catch up with the event and internal-event
    streams and with overdue timers; a part that fails does not stop the others (it is raised
    after them, so the job records it)."""
    runtime = Runtime.load(tenant_slug)
    failure: Exception | None = None
    for part in (follow_events, follow_internal_events):
        try:
            part(runtime)
        except Exception as exc:  # noqa: BLE001 - the timers must still run
            log.exception("journeys tick of %s: %s failed", tenant_slug, part.__name__)
            failure = failure or exc
    _timers(runtime, {})
    if failure is not None:
        raise failure


def dates(tenant_slug: str, payload: dict[str, Any]) -> None:
    """Job ``core.journeys.dates`` (hourly, and on activation): enter profiles whose date it is."""
    entered = enter_by_dates(Runtime.load(tenant_slug))
    log.debug("journeys of %s: %d entered by date", tenant_slug, entered)
