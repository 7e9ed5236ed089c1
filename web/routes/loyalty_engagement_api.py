"""The loyalty engagement API: a program's challenges, a member's progress and badges, referral.

A challenge that is not valid answers 422 (``detail`` says why: the filters' problems with their
place, a missing property); a name already taken, or a change the challenge's status forbids, 409.
A referral code that cannot be applied (unknown, the member's own, a second one) answers 409 with
the reason; an unknown program, challenge or profile, 404.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from core.db.engines import tenant_session
from core.loyalty import challenges, referrals
from core.loyalty.ledger import LoyaltyError
from core.loyalty.models import Challenge, ChallengeProgress, LoyaltyProgram, Referral
from core.loyalty.programs import ProgramNotFound, get_program
from core.profiles.service import ProfileNotFound, get_profile
from core.tenancy.roles import Permission
from web.auditing import audit_change
from web.auth import ControlDB, Principal, require

router = APIRouter(prefix="/api/v1", tags=["loyalty"])
Reader = Annotated[Principal, Depends(require(Permission.read_data, api=True))]
Marketer = Annotated[Principal, Depends(require(Permission.write_marketing, api=True))]
ProgramId = Annotated[int, Query(description="The loyalty program.")]
CHALLENGES = "/loyalty/programs/{program_id}/challenges"


class ReferralIn(BaseModel):
    """A referral code a customer came with."""

    model_config = ConfigDict(extra="forbid")
    program_id: int
    code: str = Field(min_length=1, max_length=20)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def challenge_json(challenge: Challenge) -> dict[str, Any]:
    """A challenge as the API shows it."""
    return {
        "id": challenge.id, "program_id": challenge.program_id, "name": challenge.name,
        "description": challenge.description, "badge": challenge.badge, "event": challenge.event,
        "where": challenge.where, "goal": challenge.goal.value, "property": challenge.property,
        "target": challenge.target, "window_days": challenge.window_days, "points": challenge.points,
        "status": challenge.status.value, "starts_at": _iso(challenge.starts_at), "ends_at": _iso(challenge.ends_at),
        "activated_at": _iso(challenge.activated_at), "created_at": _iso(challenge.created_at),
    }  # fmt: skip


def progress_json(challenge: Challenge, progress: ChallengeProgress | None) -> dict[str, Any]:
    """A member's standing in one challenge (no progress yet counts 0)."""
    return {
        "challenge": challenge_json(challenge),
        "progress": progress.progress if progress else 0,
        "target": progress.target if progress else challenge.target,
        "seen": progress.seen if progress else [],
        "completed": bool(progress and progress.completed_at),
        "completed_at": _iso(progress.completed_at if progress else None),
    }


def referral_json(referral: Referral) -> dict[str, Any]:
    """A referral as the API shows it."""
    return {
        "id": referral.id, "program_id": referral.program_id, "referrer_id": referral.referrer_id,
        "referee_id": referral.referee_id, "code": referral.code, "status": referral.status.value,
        "reason": referral.reason, "created_at": _iso(referral.created_at), "decided_at": _iso(referral.decided_at),
        "event_id": referral.event_id,
    }  # fmt: skip


@contextmanager
def _answers() -> Iterator[None]:
    """Service errors as HTTP answers: unknown things 404, refusals 409, invalid input 422."""
    try:
        yield
    except (ProgramNotFound, challenges.ChallengeNotFound, ProfileNotFound) as exc:
        raise HTTPException(404, str(exc)) from exc
    except challenges.ChallengeRefused as exc:
        raise HTTPException(409, str(exc)) from exc
    except LoyaltyError as exc:
        raise HTTPException(422, str(exc)) from exc


def _program(session: Session, program_id: int) -> LoyaltyProgram:
    with _answers():
        return get_program(session, program_id)


def _profile_id(session: Session, profile_id: str) -> str:
    """The profile's id now (a merged-away id answers for the profile it joined)."""
    with _answers():
        return get_profile(session, profile_id).id


# --- challenges ---------------------------------------------------------------------------------------
@router.get(CHALLENGES)
def list_challenges(program_id: int, principal: Reader) -> dict[str, Any]:
    """The program's challenges, oldest first."""
    with tenant_session(principal.tenant.database) as session:
        _program(session, program_id)
        return {"challenges": [challenge_json(c) for c in challenges.list_challenges(session, program_id)]}


@router.post(CHALLENGES, status_code=201)
def create_challenge(
    program_id: int, body: challenges.ChallengeIn, request: Request, control: ControlDB, principal: Marketer
) -> dict[str, Any]:
    """Save a new draft challenge (nothing counts until it is activated)."""
    with tenant_session(principal.tenant.database) as session, _answers():
        challenge = challenges.create_challenge(session, program_id, body, principal.actor)
        session.commit()
    audit_change(request, control, principal, "loyalty.challenge.create", f"challenge {challenge.id}",
           program_id=program_id, name=challenge.name)  # fmt: skip
    return challenge_json(challenge)


@router.get(CHALLENGES + "/{challenge_id}")
def read_challenge(program_id: int, challenge_id: int, principal: Reader) -> dict[str, Any]:
    """One challenge."""
    with tenant_session(principal.tenant.database) as session, _answers():
        return challenge_json(challenges.get_challenge(session, program_id, challenge_id))


@router.put(CHALLENGES + "/{challenge_id}")
def change_challenge(
    program_id: int,
    challenge_id: int,
    body: challenges.ChallengeIn,
    request: Request,
    control: ControlDB,
    principal: Marketer,
) -> dict[str, Any]:
    """Replace a draft challenge (an active or ended one keeps its definition: 409)."""
    with tenant_session(principal.tenant.database) as session, _answers():
        challenge = challenges.update_challenge(session, program_id, challenge_id, body, principal.actor)
        session.commit()
    audit_change(request, control, principal, "loyalty.challenge.update", f"challenge {challenge_id}",
           program_id=program_id, name=challenge.name)  # fmt: skip
    return challenge_json(challenge)


@router.post(CHALLENGES + "/{challenge_id}/activate")
def activate_challenge(
    program_id: int, challenge_id: int, request: Request, control: ControlDB, principal: Marketer
) -> dict[str, Any]:
    """Start a draft challenge: events from now on count towards it."""
    with tenant_session(principal.tenant.database) as session, _answers():
        challenge = challenges.activate_challenge(session, program_id, challenge_id, principal.actor)
        session.commit()
    audit_change(request, control, principal, "loyalty.challenge.activate", f"challenge {challenge_id}",
           program_id=program_id, name=challenge.name)  # fmt: skip
    return challenge_json(challenge)


@router.post(CHALLENGES + "/{challenge_id}/end")
def end_challenge(
    program_id: int, challenge_id: int, request: Request, control: ControlDB, principal: Marketer
) -> dict[str, Any]:
    """End a challenge for good (badges won stay won)."""
    with tenant_session(principal.tenant.database) as session, _answers():
        challenge = challenges.end_challenge(session, program_id, challenge_id, principal.actor)
        session.commit()
    audit_change(request, control, principal, "loyalty.challenge.end", f"challenge {challenge_id}",
           program_id=program_id, name=challenge.name)  # fmt: skip
    return challenge_json(challenge)


# --- a member's challenges and referral -------------------------------------------------------------
@router.get("/profiles/{profile_id}/loyalty/challenges")
def profile_challenges(profile_id: str, program_id: ProgramId, principal: Reader) -> dict[str, Any]:
    """The member's challenges (active ones, and ended ones they took part in) and badges won."""
    with tenant_session(principal.tenant.database) as session:
        _program(session, program_id)
        found = _profile_id(session, profile_id)
        listed = challenges.progress_of(session, program_id, found)
        return {
            "profile_id": found,
            "program_id": program_id,
            "challenges": [progress_json(challenge, progress) for challenge, progress in listed],
            "badges": challenges.badges_of(session, program_id, found),
        }


@router.get("/profiles/{profile_id}/loyalty/referral")
def profile_referral(profile_id: str, program_id: ProgramId, principal: Reader) -> dict[str, Any]:
    """The member's referral code (the profile joins the program if needed), who referred them, and
    whom they referred."""
    with tenant_session(principal.tenant.database) as session:
        program = _program(session, program_id)
        found = _profile_id(session, profile_id)
        code = referrals.member_code(session, program, found)
        session.commit()
        came_with = referrals.referred_by(session, program_id, found)
        return {
            "profile_id": found,
            "program_id": program_id,
            "code": code,
            "referred_by": referral_json(came_with) if came_with else None,
            "referrals": [referral_json(r) for r in referrals.referrals_of(session, program_id, found)],
        }


@router.post("/profiles/{profile_id}/loyalty/referral", status_code=201)
def apply_referral_code(
    profile_id: str, body: ReferralIn, request: Request, control: ControlDB, principal: Marketer
) -> dict[str, Any]:
    """Record that the customer came with a member's code (pending until their first purchase)."""
    with tenant_session(principal.tenant.database) as session:
        program = _program(session, body.program_id)
        found = _profile_id(session, profile_id)
        try:
            referral = referrals.apply_code(session, program, found, body.code)
        except LoyaltyError as exc:
            raise HTTPException(409, str(exc)) from exc
        session.commit()
    audit_change(request, control, principal, "loyalty.referral.apply", f"profile {found}",
           program_id=body.program_id, code=referral.code, referrer_id=referral.referrer_id)  # fmt: skip
    return referral_json(referral)
