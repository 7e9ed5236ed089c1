"""What every loyalty route does first or last: find the program (404 otherwise), audit a change."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request
from sqlmodel import Session

from core.audit import service as audit
from core.loyalty import programs
from core.loyalty.models import LoyaltyProgram
from web.auth import Principal, client_info


def program_or_404(session: Session, program_id: int) -> LoyaltyProgram:
    """The program, or an HTTP 404 saying there is none."""
    try:
        return programs.get_program(session, program_id)
    except programs.ProgramNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


def audit_change(
    request: Request, control: Session, principal: Principal, action: str, target: str, **detail: Any
) -> None:
    """Record a loyalty change in the audit log (committed)."""
    audit.record(control, actor=principal.actor, action=action, tenant_id=principal.tenant.id, target=target,
                 detail=detail, **client_info(request))  # fmt: skip
    control.commit()
