"""A loyalty program's catalogue in the UI: its rewards, challenges and offers, listed and edited in forms.

Pages live under ``/t/{tenant}/loyalty/programs/{program_id}/rewards|challenges|offers``. Seeing
them needs ``read_data``; saving, archiving, activating, ending and assigning ``write_marketing``,
each audited (``loyalty.reward.create``, ``loyalty.challenge.activate``, ``loyalty.offer.assign``...).
Offers are tenant-wide or tied to a program: a program's page lists its own and the tenant-wide
ones. Forms keep what was typed and show each problem next to its input; times are typed in the
tenant's time zone and stored in UTC.

This module holds what the catalogue's pages share; their routes are :mod:`web.routes.loyalty_rewards`,
:mod:`web.routes.loyalty_challenges` and :mod:`web.routes.loyalty_offers`, and their forms are read
by :mod:`web.loyalty_pages.catalogue_forms`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from core.audit import service as audit
from core.db.engines import tenant_session
from core.loyalty import programs
from core.loyalty.models import LoyaltyProgram
from core.tenancy.roles import Permission
from web.auth import Principal, client_info, require
from web.csrf import verify_csrf
from web.loyalty_pages.catalogue_forms import local_input
from web.routes.pages import page_context
from web.templating import render

PREFIX = "/t/{tenant}/loyalty/programs/{program_id:int}"
Reader = Annotated[Principal, Depends(require(Permission.read_data))]
Marketer = Annotated[Principal, Depends(require(Permission.write_marketing))]


def catalogue_router() -> APIRouter:
    """A router for one part of a program's catalogue: under the program's URL, forms checked for CSRF."""
    return APIRouter(prefix=PREFIX, dependencies=[Depends(verify_csrf)])


@dataclass(frozen=True)
class Here:
    """One request on a program's catalogue: who asks, in which tenant, about which program."""

    request: Request
    control: Session
    principal: Principal
    program_id: int

    @property
    def base(self) -> str:
        """The program's URL."""
        return f"/t/{self.principal.tenant.slug}/loyalty/programs/{self.program_id}"

    @property
    def zone(self) -> str:
        """The tenant's time zone, in which times are typed."""
        return self.principal.tenant.timezone

    def tenant_db(self) -> AbstractContextManager[Session]:
        """A session on the tenant's database."""
        return tenant_session(self.principal.tenant.database)

    def page(self, template: str, program: LoyaltyProgram, status: int = 200, **extra: Any) -> Response:
        """A catalogue page."""
        context = page_context(self.request, self.control, self.principal, section="loyalty", program=program,
                               base=self.base, zone=self.zone, local=self.local, **extra)  # fmt: skip
        return render(self.request, template, context, status_code=status)

    def local(self, moment: datetime | None) -> str:
        """A stored instant as the tenant reads it (``—`` for none)."""
        return local_input(moment, self.zone).replace("T", " ") or "—"

    def audit(self, action: str, target: str, **detail: Any) -> None:
        """Record what was done in the audit log."""
        audit.record(self.control, actor=self.principal.actor, action=action,
                     tenant_id=self.principal.tenant.id, target=target, detail=detail,
                     **client_info(self.request))  # fmt: skip
        self.control.commit()

    def back(self, page: str, query: str = "") -> Response:
        """Back to one of the catalogue's lists."""
        return RedirectResponse(f"{self.base}/{page}{'?' + query if query else ''}", status_code=303)


def load_program(session: Session, program_id: int) -> LoyaltyProgram:
    """The program whose catalogue is shown (404 if there is none)."""
    try:
        return programs.get_program(session, program_id)
    except programs.ProgramNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
