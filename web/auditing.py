"""Recording what a user changed through the web (pages and API) in the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlmodel import Session

from core.audit import service as audit
from web.auth import Principal, client_info


def audit_change(
    request: Request, control: Session, principal: Principal, action: str, target: str, **detail: Any
) -> None:
    """Record a change in the audit log, with who made it and from where (committed)."""
    audit.record(control, actor=principal.actor, action=action, tenant_id=principal.tenant.id, target=target,
                 detail=detail, **client_info(request))  # fmt: skip
    control.commit()
