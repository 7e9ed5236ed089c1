"""A loyalty program's challenges in the UI: listed with their completions, drafted, started, ended (audited).

The shared parts of the catalogue's pages are :mod:`web.routes.loyalty_catalogue`.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlmodel import Session

from core.loyalty import challenges
from core.loyalty.ledger import LoyaltyError
from core.loyalty.models import Challenge, ChallengeProgress
from web.auth import ControlDB
from web.campaign_pages.form import Problems
from web.loyalty_pages.catalogue_forms import (
    FILTER_OPS,
    Typed,
    challenge_form,
    challenge_in,
    filter_rows,
    read_typed,
    refused,
    typed_rows,
)
from web.routes.loyalty_catalogue import Here, Marketer, Reader, catalogue_router, load_program
from web.segment_builder.words import test_words

router = catalogue_router()
PROGRESS = ChallengeProgress.__table__  # type: ignore[attr-defined]


def _challenge(tenant_db: Session, program_id: int, challenge_id: int) -> Challenge:
    try:
        return challenges.get_challenge(tenant_db, program_id, challenge_id)
    except challenges.ChallengeNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


def challenge_counts(tenant_db: Session, challenge_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Per challenge: the members with progress, and those who completed it."""
    query = (
        sa.select(PROGRESS.c.challenge_id, sa.func.count(), sa.func.count(PROGRESS.c.completed_at))
        .where(PROGRESS.c.challenge_id.in_(challenge_ids))
        .group_by(PROGRESS.c.challenge_id)
    )
    return {row[0]: (int(row[1]), int(row[2])) for row in tenant_db.connection().execute(query)}


def _challenges_list(here: Here, error: str | None = None) -> Response:
    with here.tenant_db() as tenant_db:
        program = load_program(tenant_db, here.program_id)
        found = challenges.list_challenges(tenant_db, here.program_id)
        counts = challenge_counts(tenant_db, [c.id for c in found if c.id is not None])
    return here.page("loyalty/challenges.html", program, 409 if error else 200, challenges=found,
                     counts=counts, words=test_words, error=error)  # fmt: skip


@router.get("/challenges", include_in_schema=False)
def challenges_page(request: Request, program_id: int, control: ControlDB, principal: Reader) -> Response:
    """The program's challenges: what each counts, its state, and how many members completed it."""
    return _challenges_list(Here(request, control, principal, program_id))


def _challenge_page(
    here: Here, challenge_id: int | None, form: Typed | None = None, problems: Problems | None = None
) -> Response:
    with here.tenant_db() as tenant_db:
        program = load_program(tenant_db, here.program_id)
        challenge = _challenge(tenant_db, here.program_id, challenge_id) if challenge_id else None
    if form is None:
        form = challenge_form(challenge, here.zone) if challenge else {"target": "1"}
        rows = filter_rows(challenge.where if challenge else [])
    else:
        rows = typed_rows(form) + filter_rows([])
    return here.page("loyalty/challenge_form.html", program, 422 if problems else 200, challenge=challenge,
                     form=form, rows=rows, ops=FILTER_OPS, problems=problems or Problems())  # fmt: skip


@router.get("/challenges/new", include_in_schema=False)
def new_challenge_page(
    request: Request, program_id: int, control: ControlDB, principal: Marketer
) -> Response:
    """The form of a new challenge."""
    return _challenge_page(Here(request, control, principal, program_id), None)


@router.get("/challenges/{challenge_id:int}/edit", include_in_schema=False)
def edit_challenge_page(
    request: Request, program_id: int, challenge_id: int, control: ControlDB, principal: Marketer
) -> Response:
    """The form of a challenge (only a draft's changes can be saved)."""
    return _challenge_page(Here(request, control, principal, program_id), challenge_id)


def _save_challenge(here: Here, challenge_id: int | None, form: Typed) -> Response:
    problems, saved = Problems(), None
    with here.tenant_db() as tenant_db:
        load_program(tenant_db, here.program_id)
        if challenge_id is not None:
            _challenge(tenant_db, here.program_id, challenge_id)
        body = challenge_in(form, here.zone, problems)
        try:
            if body is not None and challenge_id is None:
                saved = challenges.create_challenge(tenant_db, here.program_id, body)
            elif body is not None and challenge_id is not None:
                saved = challenges.update_challenge(tenant_db, here.program_id, challenge_id, body)
        except LoyaltyError as exc:
            refused(problems, exc)
        if saved is None:
            tenant_db.rollback()
            return _challenge_page(here, challenge_id, form, problems)
        tenant_db.commit()
    action = "loyalty.challenge.create" if challenge_id is None else "loyalty.challenge.update"
    here.audit(action, f"challenge {saved.id}", program_id=here.program_id, name=saved.name)
    return here.back("challenges")


@router.post("/challenges/new", include_in_schema=False)
async def create_challenge(
    request: Request, program_id: int, control: ControlDB, principal: Marketer
) -> Response:
    """Save a draft challenge (audited); the form again with its problems otherwise."""
    form = await read_typed(request)
    return await run_in_threadpool(_save_challenge, Here(request, control, principal, program_id), None, form)


@router.post("/challenges/{challenge_id:int}/edit", include_in_schema=False)
async def update_challenge(
    request: Request, program_id: int, challenge_id: int, control: ControlDB, principal: Marketer
) -> Response:
    """Change a draft challenge (audited)."""
    form = await read_typed(request)
    here = Here(request, control, principal, program_id)
    return await run_in_threadpool(_save_challenge, here, challenge_id, form)


def _challenge_state(
    here: Here, challenge_id: int, change: Callable[[Session], Challenge], action: str
) -> Response:
    """Apply a change of state; the list again, saying why, if the challenge's state forbids it."""
    with here.tenant_db() as tenant_db:
        _challenge(tenant_db, here.program_id, challenge_id)
        try:
            challenge = change(tenant_db)
        except LoyaltyError as exc:
            tenant_db.rollback()
            return _challenges_list(here, str(exc))
        tenant_db.commit()
    here.audit(action, f"challenge {challenge_id}", name=challenge.name)
    return here.back("challenges")


@router.post("/challenges/{challenge_id:int}/activate", include_in_schema=False)
def activate_challenge(
    request: Request, program_id: int, challenge_id: int, control: ControlDB, principal: Marketer
) -> Response:
    """Start a draft challenge: events from now on count (audited)."""
    return _challenge_state(Here(request, control, principal, program_id), challenge_id,
                            lambda db: challenges.activate_challenge(db, program_id, challenge_id),
                            "loyalty.challenge.activate")  # fmt: skip


@router.post("/challenges/{challenge_id:int}/end", include_in_schema=False)
def end_challenge(
    request: Request, program_id: int, challenge_id: int, control: ControlDB, principal: Marketer
) -> Response:
    """End a challenge for good; badges won stay won (audited)."""
    return _challenge_state(Here(request, control, principal, program_id), challenge_id,
                            lambda db: challenges.end_challenge(db, program_id, challenge_id),
                            "loyalty.challenge.end")  # fmt: skip
