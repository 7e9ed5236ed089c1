"""The loyalty API: programs, their tiers and earning rules (with a dry run), and a member's loyalty.

Invalid settings answer 422 (rule problems with their ``path``); a change the state forbids, or a
debit beyond the balance, answers 409; unknown ids 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from core.db.engines import tenant_session
from core.loyalty import challenges, programs
from core.loyalty.dry_run import dry_run
from core.loyalty.events import tell_plugins
from core.loyalty.ledger import LoyaltyError, entries_of
from core.loyalty.members import adjust
from core.loyalty.models import EarningRule, LedgerEntry, LoyaltyProgram, RuleStatus, Tier
from core.loyalty.standing import standings
from core.plugins import get_host
from core.profiles.service import ProfileNotFound, get_profile
from core.segments.rules import RuleError
from core.segments.service import conditions_for
from core.tenancy.plugin_settings import enabled_plugins
from core.tenancy.roles import Permission
from web.auditing import audit_change
from web.auth import ControlDB, Principal, require
from web.loyalty_pages.access import program_or_404

router = APIRouter(prefix="/api/v1", tags=["loyalty"])
Reader = Annotated[Principal, Depends(require(Permission.read_data, api=True))]
Marketer = Annotated[Principal, Depends(require(Permission.write_marketing, api=True))]


class AdjustmentIn(BaseModel):
    """Points added (or taken, when negative) by hand."""

    model_config = ConfigDict(extra="forbid")
    program_id: int
    points: int = Field(ge=-1_000_000, le=1_000_000)
    reason: str = Field(min_length=1, max_length=500)
    idempotency_key: str | None = Field(default=None, max_length=200)


class DryRunIn(BaseModel):
    """A rule to try on a profile, with an event of its own or the profile's latest."""

    model_config = ConfigDict(extra="forbid")
    profile_id: str = Field(min_length=1, max_length=40)
    rule: programs.RuleIn
    properties: dict[str, Any] | None = None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def program_json(program: LoyaltyProgram) -> dict[str, Any]:
    """A program as the API shows it."""
    data = program.model_dump(mode="json")
    data["period_anchor"] = program.period_anchor.date().isoformat()
    return data


def tier_json(tier: Tier) -> dict[str, Any]:
    """A tier as the API shows it."""
    return tier.model_dump(mode="json")


def rule_json(rule: EarningRule) -> dict[str, Any]:
    """An earning rule as the API shows it."""
    return rule.model_dump(mode="json")


def entry_json(entry: LedgerEntry) -> dict[str, Any]:
    """A ledger entry as the API shows it."""
    return entry.model_dump(mode="json")


def _invalid(exc: RuleError) -> JSONResponse:
    problems = [{"path": p.path, "message": p.message} for p in exc.problems]
    return JSONResponse({"detail": "The rule is not valid.", "problems": problems}, status_code=422)


def _conditions(control: Session, principal: Principal) -> Any:
    return conditions_for(enabled_plugins(control, principal.tenant, get_host()))


# --- programs ------------------------------------------------------------------------------------
@router.get("/loyalty/programs")
def list_programs(principal: Reader, archived: bool = False) -> dict[str, Any]:
    """The tenant's programs (``archived=true``: retired ones too)."""
    with tenant_session(principal.tenant.database) as session:
        return {
            "programs": [program_json(p) for p in programs.list_programs(session, include_archived=archived)]
        }


@router.post("/loyalty/programs", status_code=201)
def create_program(
    body: programs.ProgramIn, request: Request, control: ControlDB, principal: Marketer
) -> dict[str, Any]:
    """Start a program."""
    with tenant_session(principal.tenant.database) as session:
        try:
            program = programs.create_program(session, body, principal.actor)
        except LoyaltyError as exc:
            raise HTTPException(409, str(exc)) from exc
        session.commit()
        audit_change(
            request,
            control,
            principal,
            "loyalty.program.create",
            f"loyalty program {program.id}",
            name=body.name,
        )
        return program_json(program)


@router.get("/loyalty/programs/{program_id}")
def read_program(program_id: int, principal: Reader) -> dict[str, Any]:
    """One program, with its tiers and rules."""
    with tenant_session(principal.tenant.database) as session:
        program = program_or_404(session, program_id)
        return {
            **program_json(program),
            "tiers": [tier_json(t) for t in programs.list_tiers(session, program_id)],
            "rules": [rule_json(r) for r in programs.list_rules(session, program_id)],
        }


@router.put("/loyalty/programs/{program_id}")
def change_program(
    program_id: int, body: programs.ProgramIn, request: Request, control: ControlDB, principal: Marketer
) -> dict[str, Any]:
    """Change a program's settings (not its key)."""
    with tenant_session(principal.tenant.database) as session:
        program_or_404(session, program_id)
        try:
            program = programs.update_program(session, program_id, body, principal.actor)
        except LoyaltyError as exc:
            raise HTTPException(409, str(exc)) from exc
        session.commit()
        audit_change(request, control, principal, "loyalty.program.update", f"loyalty program {program_id}")
        return program_json(program)


@router.post("/loyalty/programs/{program_id}/archive")
def archive_program(
    program_id: int, request: Request, control: ControlDB, principal: Marketer
) -> dict[str, Any]:
    """Retire a program: no more earning or redeeming; balances and ledger stay readable."""
    with tenant_session(principal.tenant.database) as session:
        program_or_404(session, program_id)
        program = programs.archive_program(session, program_id, principal.actor)
        session.commit()
        audit_change(request, control, principal, "loyalty.program.archive", f"loyalty program {program_id}")
        return program_json(program)


# --- tiers ---------------------------------------------------------------------------------------------
@router.get("/loyalty/programs/{program_id}/tiers")
def list_tiers(program_id: int, principal: Reader) -> dict[str, Any]:
    """The program's tiers, lowest first."""
    with tenant_session(principal.tenant.database) as session:
        program_or_404(session, program_id)
        return {"tiers": [tier_json(t) for t in programs.list_tiers(session, program_id)]}


@router.post("/loyalty/programs/{program_id}/tiers", status_code=201)
def add_tier(
    program_id: int, body: programs.TierIn, request: Request, control: ControlDB, principal: Marketer
) -> dict[str, Any]:
    """Add a tier."""
    with tenant_session(principal.tenant.database) as session:
        program_or_404(session, program_id)
        try:
            tier = programs.add_tier(session, program_id, body)
        except LoyaltyError as exc:
            raise HTTPException(409, str(exc)) from exc
        session.commit()
        audit_change(
            request, control, principal, "loyalty.tier.create", f"loyalty tier {tier.id}", name=body.name
        )
        return tier_json(tier)


@router.put("/loyalty/programs/{program_id}/tiers/{tier_id}")
def change_tier(
    program_id: int,
    tier_id: int,
    body: programs.TierIn,
    request: Request,
    control: ControlDB,
    principal: Marketer,
) -> dict[str, Any]:
    """Change a tier."""
    with tenant_session(principal.tenant.database) as session:
        try:
            tier = programs.update_tier(session, program_id, tier_id, body)
        except programs.TierNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except LoyaltyError as exc:
            raise HTTPException(409, str(exc)) from exc
        session.commit()
        audit_change(request, control, principal, "loyalty.tier.update", f"loyalty tier {tier_id}")
        return tier_json(tier)


@router.delete("/loyalty/programs/{program_id}/tiers/{tier_id}", status_code=204)
def delete_tier(
    program_id: int, tier_id: int, request: Request, control: ControlDB, principal: Marketer
) -> None:
    """Remove a tier nobody holds."""
    with tenant_session(principal.tenant.database) as session:
        try:
            programs.delete_tier(session, program_id, tier_id)
        except programs.TierNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except LoyaltyError as exc:
            raise HTTPException(409, str(exc)) from exc
        session.commit()
        audit_change(request, control, principal, "loyalty.tier.delete", f"loyalty tier {tier_id}")


# --- earning rules -----------------------------------------------------------------------------------
@router.get("/loyalty/programs/{program_id}/rules")
def list_rules(program_id: int, principal: Reader) -> dict[str, Any]:
    """The program's earning rules."""
    with tenant_session(principal.tenant.database) as session:
        program_or_404(session, program_id)
        return {"rules": [rule_json(r) for r in programs.list_rules(session, program_id)]}


@router.post("/loyalty/programs/{program_id}/rules", status_code=201, response_model=None)
def create_rule(
    program_id: int, body: programs.RuleIn, request: Request, control: ControlDB, principal: Marketer
) -> Any:
    """Save a draft earning rule (it applies once activated)."""
    conditions = _conditions(control, principal)
    with tenant_session(principal.tenant.database) as session:
        program_or_404(session, program_id)
        try:
            rule = programs.create_rule(session, program_id, body, principal.actor, conditions)
        except RuleError as exc:
            return _invalid(exc)
        except LoyaltyError as exc:
            raise HTTPException(409, str(exc)) from exc
        session.commit()
        audit_change(
            request, control, principal, "loyalty.rule.create", f"loyalty rule {rule.id}", name=body.name
        )
        return rule_json(rule)


@router.get("/loyalty/programs/{program_id}/rules/{rule_id}")
def read_rule(program_id: int, rule_id: int, principal: Reader) -> dict[str, Any]:
    """One earning rule."""
    with tenant_session(principal.tenant.database) as session:
        try:
            return rule_json(programs.get_rule(session, program_id, rule_id))
        except programs.RuleNotFound as exc:
            raise HTTPException(404, str(exc)) from exc


@router.put("/loyalty/programs/{program_id}/rules/{rule_id}", response_model=None)
def change_rule(
    program_id: int,
    rule_id: int,
    body: programs.RuleIn,
    request: Request,
    control: ControlDB,
    principal: Marketer,
) -> Any:
    """Change an earning rule (an active one: for events from now on)."""
    conditions = _conditions(control, principal)
    with tenant_session(principal.tenant.database) as session:
        try:
            rule = programs.update_rule(session, program_id, rule_id, body, principal.actor, conditions)
        except programs.RuleNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except RuleError as exc:
            return _invalid(exc)
        except LoyaltyError as exc:
            raise HTTPException(409, str(exc)) from exc
        session.commit()
        audit_change(request, control, principal, "loyalty.rule.update", f"loyalty rule {rule_id}")
        return rule_json(rule)


def _set_status(
    program_id: int,
    rule_id: int,
    status: RuleStatus,
    request: Request,
    control: Session,
    principal: Principal,
) -> dict[str, Any]:
    with tenant_session(principal.tenant.database) as session:
        try:
            rule = programs.set_rule_status(session, program_id, rule_id, status, principal.actor)
        except programs.RuleNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except LoyaltyError as exc:
            raise HTTPException(409, str(exc)) from exc
        session.commit()
        audit_change(request, control, principal, f"loyalty.rule.{status.value}", f"loyalty rule {rule_id}")
        return rule_json(rule)


@router.post("/loyalty/programs/{program_id}/rules/{rule_id}/activate")
def activate_rule(
    program_id: int, rule_id: int, request: Request, control: ControlDB, principal: Marketer
) -> dict[str, Any]:
    """Start applying a draft rule to events from now on."""
    return _set_status(program_id, rule_id, RuleStatus.active, request, control, principal)


@router.post("/loyalty/programs/{program_id}/rules/{rule_id}/end")
def end_rule(
    program_id: int, rule_id: int, request: Request, control: ControlDB, principal: Marketer
) -> dict[str, Any]:
    """Stop a rule for good (what it earned stays)."""
    return _set_status(program_id, rule_id, RuleStatus.ended, request, control, principal)


@router.post("/loyalty/programs/{program_id}/dry-run", response_model=None)
def try_rule(program_id: int, body: DryRunIn, control: ControlDB, principal: Reader) -> Any:
    """What a rule would earn a profile, check by check; records nothing."""
    conditions = _conditions(control, principal)
    with tenant_session(principal.tenant.database) as session:
        program = program_or_404(session, program_id)
        try:
            profile = get_profile(session, body.profile_id)
            result = dry_run(session, program, body.rule, profile.id, conditions, ZoneInfo(principal.tenant.timezone),
                             body.properties)  # fmt: skip
        except ProfileNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except RuleError as exc:
            return _invalid(exc)
        finally:
            session.rollback()
        return {
            "points": result.points, "event": result.event, "note": result.note,
            "checks": [{"label": c.label, "passed": c.passed, "detail": c.detail} for c in result.checks],
        }  # fmt: skip


# --- a member's loyalty -------------------------------------------------------------------------------
@router.get("/profiles/{profile_id}/loyalty")
def member_loyalty(
    profile_id: str, principal: Reader, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    """Balance, tier, progress and the latest ledger entries, for each program the profile is in."""
    with tenant_session(principal.tenant.database) as session:
        try:
            profile = get_profile(session, profile_id)
        except ProfileNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        found = []
        for standing in standings(session, [profile.id]).get(profile.id, []):
            found.append({
                **standing.fields(),
                "program_id": standing.program_id,
                "challenges": [
                    {"id": c.id, "name": c.name, "badge": c.badge, "target": c.target,
                     "progress": p.progress if p else 0, "completed_at": _iso(p.completed_at) if p else None}
                    for c, p in challenges.progress_of(session, standing.program_id, profile.id)
                ],
                "ledger": [entry_json(e) for e in entries_of(session, standing.program_id, profile.id, limit)],
            })  # fmt: skip
        return {"profile_id": profile.id, "programs": found}


@router.post("/profiles/{profile_id}/loyalty/adjustments", status_code=201)
def adjust_points(
    profile_id: str, body: AdjustmentIn, request: Request, control: ControlDB, principal: Marketer
) -> dict[str, Any]:
    """Add or take points by hand (with the reason; who did it is recorded)."""
    with tenant_session(principal.tenant.database) as session:
        program = program_or_404(session, body.program_id)
        try:
            profile = get_profile(session, profile_id)
            posted = adjust(session, program, profile.id, body.points, principal.actor, body.reason,
                            idempotency_key=body.idempotency_key)  # fmt: skip
        except ProfileNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except LoyaltyError as exc:
            raise HTTPException(409, str(exc)) from exc
        session.commit()
        audit_change(request, control, principal, "loyalty.adjust", f"profile {profile.id}", program_id=body.program_id,
               points=body.points, reason=body.reason)  # fmt: skip
        tell_plugins(principal.tenant.slug, {profile.id})
        balance = standings(session, [profile.id]).get(profile.id, [])
        current = next((s.balance for s in balance if s.program_id == body.program_id), 0)
        return {"entries": [e["id"] for e in posted.entries], "balance": current}
