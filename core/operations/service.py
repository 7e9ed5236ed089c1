"""Pass operations, step by step: the operation, its templates, audience and distribution, then launch.

Every step validates what it is given and says what is wrong in words (:class:`OperationInvalid`);
only a draft changes. Personalization (step 3) is :mod:`core.operations.personalization`; the
audience's size and reach (step 4) is :mod:`core.operations.audience`; what the launch job does is
:mod:`core.operations.jobs`.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date

from sqlmodel import Session, col, select

from core.db.base import utcnow
from core.operations.errors import OperationInvalid, OperationNotFound
from core.operations.models import OperationState, PassOperation
from core.passes.models import PassTemplate
from core.queue.outbox import add_job
from core.segments.models import Segment

LAUNCH_OPERATION = "core.operations.launch"
WALLETS = {"wallet_apple": "Apple Wallet", "wallet_google": "Google Wallet"}


def get_operation(session: Session, operation_id: int) -> PassOperation:
    """The operation, or :class:`OperationNotFound`."""
    found = session.get(PassOperation, operation_id)
    if found is None:
        raise OperationNotFound(f"There is no pass operation {operation_id}.")
    return found


def list_operations(session: Session) -> list[PassOperation]:
    """Every operation, newest first."""
    return list(session.exec(select(PassOperation).order_by(col(PassOperation.id).desc())))


def _editable(operation: PassOperation) -> None:
    if operation.state != OperationState.draft:
        raise OperationInvalid(
            [("", f"The operation was launched ({operation.state}): it can no longer change.")]
        )


def _touch(session: Session, operation: PassOperation, actor: str) -> PassOperation:
    operation.updated_at, operation.updated_by = utcnow(), actor
    session.add(operation)
    session.flush()
    return operation


def _date(text: str, name: str, words: str, problems: list[tuple[str, str]]) -> date | None:
    text = text.strip()
    if not text:
        problems.append((name, f"Give the {words}."))
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        problems.append((name, f"“{text}” is not a date like 2026-12-01."))
        return None


def save_basics(
    session: Session, actor: str, name: str, goal: str, starts_on: str, ends_on: str,
    operation: PassOperation | None = None,
) -> PassOperation:  # fmt: skip
    """Step 1: create an operation (or change ``operation``): its name, goal and dates (end after start)."""
    if operation is not None:
        _editable(operation)
    problems: list[tuple[str, str]] = []
    name = name.strip()
    if not name:
        problems.append(("name", "Give the operation a name."))
    elif len(name) > 200:
        problems.append(("name", "The name is longer than 200 characters."))
    else:
        clash = session.exec(select(PassOperation).where(PassOperation.name == name)).first()
        if clash is not None and (operation is None or clash.id != operation.id):
            problems.append(("name", f"An operation is already named “{name}”."))
    if len(goal) > 2000:
        problems.append(("goal", "The goal is longer than 2000 characters."))
    start = _date(starts_on, "starts_on", "start date", problems)
    end = _date(ends_on, "ends_on", "end date", problems)
    if start and end and end <= start:
        problems.append(("ends_on", "The operation must end after it starts."))
    if problems:
        raise OperationInvalid(problems)
    row = operation or PassOperation(name=name, created_by=actor)
    row.name, row.goal, row.starts_on, row.ends_on = name, goal.strip(), start, end
    return _touch(session, row, actor)


def save_templates(
    session: Session, operation: PassOperation, apple_id: int | None, google_id: int | None, actor: str
) -> PassOperation:
    """Step 2: the Apple and/or Google template (at least one, each of its own wallet, not archived)."""
    _editable(operation)
    problems: list[tuple[str, str]] = []
    if apple_id is None and google_id is None:
        problems.append(("", "Choose a template for at least one wallet."))
    for field, channel, chosen in (("apple_template_id", "wallet_apple", apple_id),
                                   ("google_template_id", "wallet_google", google_id)):  # fmt: skip
        if chosen is None:
            continue
        template = session.get(PassTemplate, chosen)
        if template is None or template.archived:
            problems.append((field, f"There is no pass template {chosen}."))
        elif channel not in template.wallets():
            problems.append((field, f"“{template.name}” is not issued in {WALLETS[channel]}."))
    if problems:
        raise OperationInvalid(problems)
    operation.apple_template_id, operation.google_template_id = apple_id, google_id
    return _touch(session, operation, actor)


def save_audience(
    session: Session, operation: PassOperation, segment_id: int | None, actor: str
) -> PassOperation:
    """Step 4: the segment whose members get the pass."""
    _editable(operation)
    if segment_id is None:
        raise OperationInvalid([("segment_id", "Choose a segment.")])
    segment = session.get(Segment, segment_id)
    if segment is None or segment.archived_at is not None:
        raise OperationInvalid([("segment_id", f"Segment {segment_id} does not exist or is archived.")])
    operation.segment_id = segment_id
    return _touch(session, operation, actor)


def save_distribution(
    session: Session, operation: PassOperation, channels: Collection[str], qr: bool, web: bool,
    enabled: Collection[str], actor: str,
) -> PassOperation:  # fmt: skip
    """Step 5: the message channels carrying the add-to-wallet link, and QR / web button (at least one way)."""
    _editable(operation)
    unknown = sorted(set(channels) - set(enabled))
    problems: list[tuple[str, str]] = [("channels", f"“{key}” is not a message channel enabled for this tenant.")
                                       for key in unknown]  # fmt: skip
    if not channels and not qr and not web:
        problems.append(("", "Choose at least one way to bring the pass to customers."))
    if problems:
        raise OperationInvalid(problems)
    operation.distribution = {"channels": sorted(set(channels)), "qr": qr, "web": web}
    return _touch(session, operation, actor)


def missing_steps(operation: PassOperation) -> list[tuple[str, str]]:
    """What still stops the launch, by step, in words (empty: ready)."""
    missing = []
    if operation.starts_on is None or operation.ends_on is None:
        missing.append(("1", "The operation has no dates."))
    if not operation.template_ids():
        missing.append(("2", "No pass template is chosen."))
    if operation.segment_id is None:
        missing.append(("4", "No audience is chosen."))
    if not operation.distribution:
        missing.append(("5", "The distribution is not chosen."))
    return missing


def launch(session: Session, tenant_slug: str, operation: PassOperation, actor: str) -> PassOperation:
    """Step 7: launch now; a background job issues the passes in chunks, then starts the campaigns."""
    _editable(operation)
    if missing := missing_steps(operation):
        raise OperationInvalid([("", f"Step {step}: {what}") for step, what in missing])
    operation.state, operation.launched_at, operation.launched_by = OperationState.launching, utcnow(), actor
    _touch(session, operation, actor)
    add_job(session, tenant_slug, LAUNCH_OPERATION, {"operation_id": operation.id},
            idempotency_key=launch_job_key(operation))  # fmt: skip
    return operation


def launch_job_key(operation: PassOperation) -> str:
    """The idempotency key of an operation's launch job (one launch per operation)."""
    return f"pass-operation-launch:{operation.id}"
