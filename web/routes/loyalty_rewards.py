"""A loyalty program's rewards in the UI: listed, added, changed and archived (audited).

The shared parts of the catalogue's pages are :mod:`web.routes.loyalty_catalogue`.
"""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlmodel import Session

from core.loyalty import programs, rewards
from core.loyalty.ledger import LoyaltyError
from core.loyalty.models import Reward, RewardStatus
from web.auth import ControlDB
from web.campaign_pages.form import Problems
from web.loyalty_pages.catalogue_forms import Typed, read_typed, refused, reward_form, reward_in
from web.routes.loyalty_catalogue import Here, Marketer, Reader, catalogue_router, load_program

router = catalogue_router()


def _reward(tenant_db: Session, program_id: int, reward_id: int) -> Reward:
    try:
        return rewards.get_reward(tenant_db, reward_id, program_id)
    except rewards.RewardNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


@router.get("/rewards", include_in_schema=False)
def rewards_page(request: Request, program_id: int, control: ControlDB, principal: Reader) -> Response:
    """The program's rewards, active and archived: cost, stock left, vouchers issued, limits."""
    here = Here(request, control, principal, program_id)
    with here.tenant_db() as tenant_db:
        program = load_program(tenant_db, program_id)
        found = rewards.list_rewards(tenant_db, program_id, include_archived=True)
        tiers = {t.id: t.name for t in programs.list_tiers(tenant_db, program_id)}
    return here.page("loyalty/rewards.html", program, rewards=found, tiers=tiers)


def _reward_page(
    here: Here, reward_id: int | None, form: Typed | None = None, problems: Problems | None = None
) -> Response:
    with here.tenant_db() as tenant_db:
        program = load_program(tenant_db, here.program_id)
        reward = _reward(tenant_db, here.program_id, reward_id) if reward_id else None
        tiers = programs.list_tiers(tenant_db, here.program_id)
    if form is None:
        form = reward_form(reward, here.zone) if reward else {}
    return here.page("loyalty/reward_form.html", program, 422 if problems else 200, reward=reward, form=form,
                     tiers=tiers, problems=problems or Problems())  # fmt: skip


@router.get("/rewards/new", include_in_schema=False)
def new_reward_page(request: Request, program_id: int, control: ControlDB, principal: Marketer) -> Response:
    """The form of a new reward."""
    return _reward_page(Here(request, control, principal, program_id), None)


@router.get("/rewards/{reward_id:int}/edit", include_in_schema=False)
def edit_reward_page(
    request: Request, program_id: int, reward_id: int, control: ControlDB, principal: Marketer
) -> Response:
    """The form of a reward."""
    return _reward_page(Here(request, control, principal, program_id), reward_id)


def _save_reward(here: Here, reward_id: int | None, form: Typed) -> Response:
    problems, saved = Problems(), None
    with here.tenant_db() as tenant_db:
        load_program(tenant_db, here.program_id)
        current = _reward(tenant_db, here.program_id, reward_id) if reward_id else None
        # The form does not change the status: saving an archived reward keeps it archived.
        body = reward_in(form, here.zone, current.status if current else RewardStatus.active, problems)
        try:
            if body is not None and current is None:
                saved = rewards.create_reward(tenant_db, here.program_id, body, here.principal.actor)
            elif body is not None and reward_id is not None:
                saved = rewards.update_reward(
                    tenant_db, here.program_id, reward_id, body, here.principal.actor
                )
        except LoyaltyError as exc:
            refused(problems, exc)
        if saved is None:
            tenant_db.rollback()
            return _reward_page(here, reward_id, form, problems)
        tenant_db.commit()
    action = "loyalty.reward.create" if current is None else "loyalty.reward.update"
    here.audit(action, f"loyalty reward {saved.id}", program_id=here.program_id, name=saved.name,
               cost=saved.cost, stock=saved.stock)  # fmt: skip
    return here.back("rewards")


@router.post("/rewards/new", include_in_schema=False)
async def create_reward(
    request: Request, program_id: int, control: ControlDB, principal: Marketer
) -> Response:
    """Add a reward to the catalogue (audited); the form again with its problems otherwise."""
    form = await read_typed(request)
    return await run_in_threadpool(_save_reward, Here(request, control, principal, program_id), None, form)


@router.post("/rewards/{reward_id:int}/edit", include_in_schema=False)
async def update_reward(
    request: Request, program_id: int, reward_id: int, control: ControlDB, principal: Marketer
) -> Response:
    """Change a reward (audited): the stock typed is the number of units left from now on."""
    form = await read_typed(request)
    return await run_in_threadpool(
        _save_reward, Here(request, control, principal, program_id), reward_id, form
    )


@router.post("/rewards/{reward_id:int}/archive", include_in_schema=False)
def archive_reward(
    request: Request, program_id: int, reward_id: int, control: ControlDB, principal: Marketer
) -> Response:
    """Withdraw a reward from the catalogue; vouchers already issued stay valid (audited)."""
    here = Here(request, control, principal, program_id)
    with here.tenant_db() as tenant_db:
        reward = _reward(tenant_db, program_id, reward_id)
        rewards.archive_reward(tenant_db, program_id, reward_id, principal.actor)
        tenant_db.commit()
    here.audit("loyalty.reward.archive", f"loyalty reward {reward_id}", name=reward.name)
    return here.back("rewards")
