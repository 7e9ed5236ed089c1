"""What the journey builder's steps may refer to: a rule's choices, and the tenant's pass templates."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from sqlmodel import Session

from core.passes import library
from core.segments.service import TenantScope
from web.segment_builder.options import Options, load_options


@dataclass
class JourneyOptions(Options):
    """The audience builder's options, plus the pass templates wallet pass steps choose from."""

    pass_templates: list[tuple[int, str]] = field(default_factory=list)  # not archived, by name


def load_journey_options(tenant_db: Session, scope: TenantScope) -> JourneyOptions:
    """The segments, offers, traits and events a journey's steps may use, and the pass templates."""
    base = load_options(tenant_db, scope, None)
    templates = [(t.id, t.name) for t in library.templates(tenant_db) if t.id is not None]
    return JourneyOptions(**{f.name: getattr(base, f.name) for f in fields(base)}, pass_templates=templates)


def pass_templates(options: Options) -> list[tuple[int, str]]:
    """The pass templates to choose from (none when the options are only a rule's)."""
    return options.pass_templates if isinstance(options, JourneyOptions) else []
