"""What every loyalty route does first: find the program (404 otherwise)."""

from __future__ import annotations

from fastapi import HTTPException
from sqlmodel import Session

from core.loyalty import programs
from core.loyalty.models import LoyaltyProgram


def program_or_404(session: Session, program_id: int) -> LoyaltyProgram:
    """The program, or an HTTP 404 saying there is none."""
    try:
        return programs.get_program(session, program_id)
    except programs.ProgramNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
