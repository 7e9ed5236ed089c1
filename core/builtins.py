"""The core's own hook implementations, registered as the always-enabled built-in plugin "core".

Registering core behaviour through the same hooks as plugins keeps one registry for identifier
types and job types; a plugin that registers a key the core owns is refused with a clear reason.
"""

from __future__ import annotations

from collections.abc import Callable

from core.campaigns.jobs import LAUNCH_CAMPAIGN, launch_campaign
from core.delivery.outbox import SEND_DELIVERIES
from core.delivery.sending import send_deliveries
from core.identity.identifiers import CORE_IDENTIFIER_TYPES
from core.imports.service import IMPORT_JOB, import_csv
from core.journeys import jobs as journey_jobs
from core.loyalty import engine as loyalty
from core.operations import jobs as operation_jobs
from core.operations import service as operation_service
from core.passes import marking as pass_marking
from core.passes import updates as pass_updates
from core.plugin_api import IdentifierType, JobType, hookimpl
from core.profiles.jobs import PROCESS_EVENTS, process_events
from core.segments import jobs as segment_jobs
from core.traits.jobs import COMPUTE_TRAITS, EVERY, compute_traits


@hookimpl
def register_identifier_types(register: Callable[[IdentifierType], None]) -> None:
    """Email, phone, user id and anonymous id."""
    for identifier_type in CORE_IDENTIFIER_TYPES.values():
        register(identifier_type)


@hookimpl
def register_jobs(register: Callable[[JobType], None]) -> None:
    """Folding accepted events into profiles; CSV imports; computed traits (daily); segments (hourly);
    campaign launches and sends; journey timers, the journey tick (every minute) and date triggers (hourly);
    loyalty: applying programs to events, its tick (every minute), expiry and tier periods (hourly);
    wallet passes: re-issuing passes whose bound values changed, and expiring passes (hourly)."""
    register(JobType(key=PROCESS_EVENTS, handler=process_events))
    register(JobType(key=IMPORT_JOB, handler=import_csv))
    register(JobType(key=COMPUTE_TRAITS, handler=compute_traits, every=EVERY))
    register(JobType(key=segment_jobs.REFRESH_SEGMENTS, handler=segment_jobs.refresh_segments,
                     every=segment_jobs.EVERY))  # fmt: skip
    register(JobType(key=LAUNCH_CAMPAIGN, handler=launch_campaign))
    register(JobType(key=operation_service.LAUNCH_OPERATION, handler=operation_jobs.launch_operation))
    register(JobType(key=SEND_DELIVERIES, handler=send_deliveries))
    register(JobType(key=journey_jobs.ADVANCE_TIMERS, handler=journey_jobs.advance_timers))
    register(JobType(key=journey_jobs.TICK, handler=journey_jobs.tick, every=journey_jobs.TICK_EVERY))
    register(JobType(key=journey_jobs.DATES, handler=journey_jobs.dates, every=journey_jobs.DATES_EVERY))
    register(JobType(key=loyalty.APPLY, handler=loyalty.apply_events, spread=True))
    register(JobType(key=loyalty.TICK, handler=loyalty.tick, every=loyalty.TICK_EVERY))
    register(JobType(key=loyalty.DAILY, handler=loyalty.expire_and_roll, every=loyalty.DAILY_EVERY))
    register(JobType(key=pass_marking.REFRESH, handler=pass_updates.refresh_passes))
    register(
        JobType(key=pass_updates.EXPIRE, handler=pass_updates.expire_passes, every=pass_updates.EXPIRE_EVERY)
    )
