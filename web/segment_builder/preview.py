"""The live preview: a rule's count, sample and reach per channel now, or its problems."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from core.profiles.models import Profile
from core.segments import service
from core.segments.rules import Problem, RuleError
from core.segments.service import Reach, TenantScope

log = logging.getLogger(__name__)


@dataclass
class Preview:
    """The live evaluation of a rule, or why there is none."""

    count: int | None = None
    sample: list[Profile] = field(default_factory=list)
    reach: list[Reach] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    error: str | None = None


def evaluate(tenant_db: Session, scope: TenantScope, rule: Any, self_id: int | None) -> Preview:
    """Count, sample and reach of ``rule`` now; its problems when it is not valid."""
    try:
        parsed = service.check_rule(tenant_db, rule, scope.conditions, self_id)
    except RuleError as exc:
        return Preview(problems=exc.problems)
    try:
        return Preview(
            count=service.count(tenant_db, parsed, scope.clock),
            sample=service.sample(tenant_db, parsed, scope.clock),
            reach=service.reach(tenant_db, parsed, scope.clock, scope.channels),
        )
    except Exception as exc:  # noqa: BLE001 - e.g. a plugin condition's SQL: show it, keep the page
        log.exception("segment preview failed")
        tenant_db.rollback()
        return Preview(error=f"The count failed ({type(exc).__name__}).")
