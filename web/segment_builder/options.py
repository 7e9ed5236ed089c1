"""What a rule of a tenant may refer to: the choices and suggestions the builder offers."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlmodel import Session, select

from core.loyalty.offers import list_offers
from core.profiles.models import Profile
from core.segments import service
from core.segments.rules import LoyaltyProgramRef
from core.segments.service import TenantScope

SUGGESTIONS = 200


@dataclass
class Options:
    """What a rule of this tenant may refer to, for the builder's selects and new conditions."""

    scope: TenantScope
    segments: list[tuple[int, str]] = field(default_factory=list)  # other active segments
    names: dict[int, str] = field(default_factory=dict)  # every active segment
    trait_keys: list[str] = field(default_factory=list)
    event_names: list[str] = field(default_factory=list)
    programs: list[LoyaltyProgramRef] = field(default_factory=list)  # loyalty programs, by id
    offers: list[tuple[int, str]] = field(default_factory=list)  # active loyalty offers (a journey step)

    def program(self, program_id: object) -> LoyaltyProgramRef | None:
        """The loyalty program with this id, if there is one."""
        return next((p for p in self.programs if p.id == program_id), None)


def load_options(tenant_db: Session, scope: TenantScope, self_id: int | None) -> Options:
    """The other segments, loyalty programs and offers, and trait keys and event names seen, for the builder."""
    active = service.active_segments(tenant_db)
    segments = [(s.id, s.name) for s in active if s.id is not None and s.id != self_id]
    keys: set[str] = set()
    for traits in tenant_db.exec(select(Profile.traits).limit(SUGGESTIONS)):
        keys.update(k for k in (traits or {}) if isinstance(k, str))
    offers = [(o.id, o.name) for o in list_offers(tenant_db) if o.id is not None]
    return Options(scope, segments, {s.id: s.name for s in active if s.id is not None},
                   sorted(keys)[:SUGGESTIONS], event_names(tenant_db),
                   list(service.loyalty_programs(tenant_db).values()), offers)  # fmt: skip


def event_names(tenant_db: Session, limit: int = SUGGESTIONS) -> list[str]:
    """Distinct event names, read by hopping along the (name, time) index (cheap on both databases)."""
    query = sa.text(
        "WITH RECURSIVE names(name, n) AS ("
        ' SELECT (SELECT MIN(event) FROM "event" WHERE event IS NOT NULL), 1'
        ' UNION ALL SELECT (SELECT MIN(event) FROM "event" WHERE event > names.name), n + 1'
        " FROM names WHERE names.name IS NOT NULL AND n < :limit)"
        " SELECT name FROM names WHERE name IS NOT NULL"
    )
    return [str(name) for (name,) in tenant_db.connection().execute(query, {"limit": limit})]
