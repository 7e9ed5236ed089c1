"""What an operation did: targeted, issued, failed by reason, and its passes' activity since launch.

Activity (clicks, downloads, installs, removals, updates, pushes, notifications) is counted from
``pass_activity`` of the operation's templates since its launch, per wallet and per day. Issued
passes are normal wallet passes: they keep updating after the operation ends, and so does this report.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from core.db.base import utcnow
from core.operations.models import OperationState, PassOperation
from core.operations.service import WALLETS, launch_job_key
from core.passes.models import PassActivity, PassActivityKind
from core.queue.models import Job, JobStatus

MAX_DAYS = 90
SHOWN = {
    "clicked": "Link clicks", "downloaded": "Downloads", "installed": "Installs", "removed": "Removals",
    "updated": "Updates", "pushed": "Updates pushed", "notified": "Notifications shown",
}  # fmt: skip


@dataclass
class OperationReport:
    """The launch's counts and the activity since, in total and per day, per wallet."""

    targeted: int = 0
    issued: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[str, int]] = field(default_factory=list)
    activity: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> wallet -> count
    days: list[str] = field(default_factory=list)
    per_day: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> day -> count (all wallets)
    # While launching: what went wrong with the launch job, if anything, and whether it stopped for good.
    launch_problem: str | None = None
    launch_stopped: bool = False

    def total(self, kind: str) -> int:
        """One activity counted over every wallet."""
        return sum(self.activity.get(kind, {}).values())


def _day(value: object) -> str:
    return value.isoformat() if isinstance(value, date | datetime) else str(value)[:10]


def operation_report(session: Session, operation: PassOperation) -> OperationReport:
    """The figures of an operation (all zero before its launch)."""
    counts = operation.counts or {}
    report = OperationReport(targeted=int(counts.get("targeted", 0)))
    for channel in operation.template_ids():
        report.issued[channel] = int(counts.get(channel, {}).get("issued", 0))
        report.failed[channel] = int(counts.get(channel, {}).get("failed", 0))
    report.failures = sorted(((reason, int(n)) for reason, n in counts.get("failures", {}).items()),
                             key=lambda item: -item[1])  # fmt: skip
    if operation.state == OperationState.launching:
        _launch_job_state(session, operation, report)
    if operation.launched_at is None or not operation.template_ids():
        return report
    templates = list(operation.template_ids().values())
    since = [col(PassActivity.template_id).in_(templates), col(PassActivity.at) >= operation.launched_at]
    totals = (
        select(PassActivity.kind, PassActivity.channel, func.count())
        .where(*since)
        .group_by(col(PassActivity.kind), col(PassActivity.channel))
    )
    for kind, channel, number in session.exec(totals):
        report.activity.setdefault(PassActivityKind(kind).value, {})[channel] = int(number)
    day = func.date(col(PassActivity.at))
    daily = select(day, PassActivity.kind, func.count()).where(*since).group_by(day, col(PassActivity.kind))
    per_day: defaultdict[str, dict[str, int]] = defaultdict(dict)
    for moment, kind, number in session.exec(daily):
        per_day[PassActivityKind(kind).value][_day(moment)] = int(number)
    report.per_day = dict(per_day)
    report.days = _every_day(
        operation.launched_at.date(), sorted({d for found in per_day.values() for d in found})
    )
    return report


def _launch_job_state(session: Session, operation: PassOperation, report: OperationReport) -> None:
    """Say when the launch job failed: retrying, or stopped for good (then the page stops waiting)."""
    key = launch_job_key(operation)
    job = session.exec(select(Job).where(Job.idempotency_key == key)).first()
    if job is None or not job.last_error:
        return
    error = job.last_error.strip().splitlines()[-1][:300]
    if job.status == JobStatus.failed:
        report.launch_stopped = True
        report.launch_problem = (
            f"The launch stopped after {job.attempts} attempts: {error}. Passes already issued stay issued."
        )
    else:
        report.launch_problem = (
            f"The launch is being retried (attempt {job.attempts} of {job.max_attempts}): {error}"
        )


def _every_day(launched: date, active: list[str]) -> list[str]:
    """Every day from the launch to the last activity (or today), the last ``MAX_DAYS`` at most."""
    last = max([utcnow().date(), *(date.fromisoformat(day) for day in active)])
    count = min((last - launched).days + 1, MAX_DAYS)
    return [(last - timedelta(days=back)).isoformat() for back in reversed(range(count))]


def report_csv(operation: PassOperation, report: OperationReport) -> str:
    """The report as CSV: one row per figure (``figure, wallet, day, count``; blank day: the total)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["operation", "figure", "wallet", "day", "count"])
    writer.writerow([operation.name, "targeted", "", "", report.targeted])
    for channel, number in report.issued.items():
        writer.writerow([operation.name, "issued", WALLETS[channel], "", number])
    for channel, number in report.failed.items():
        writer.writerow([operation.name, "failed", WALLETS[channel], "", number])
    for reason, number in report.failures:
        writer.writerow([operation.name, f"failed: {reason}", "", "", number])
    for kind in SHOWN:
        for channel, number in sorted(report.activity.get(kind, {}).items()):
            writer.writerow([operation.name, kind, WALLETS.get(channel, channel), "", number])
        for day, number in sorted(report.per_day.get(kind, {}).items()):
            writer.writerow([operation.name, kind, "", day, number])
    return out.getvalue()
