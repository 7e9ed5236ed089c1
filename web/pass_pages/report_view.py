"""The validation report of a saved template: which profiles of a segment (or the most recent ones)
could not get its pass, and why. Nothing is issued."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session

from core.passes.design import PassDesign
from core.passes.models import PassTemplate
from core.passes.previews import problems_by_profile
from core.passes.ui_queries import profile_names, recent_profile_ids, segment_profile_ids
from core.passes.wallets import WalletUnavailable, wallet_for
from core.plugin_api import ChannelNotImplemented
from core.segments.service import active_segments
from core.tenancy.models import Tenant
from web.pass_pages.design_form import form_of_design
from web.pass_pages.problems import rendering_problems

RECENT = 200
MAX_SEGMENT = 1000
MAX_SHOWN = 100


@dataclass(frozen=True)
class Failing:
    """A profile that could not get the pass, and why."""

    profile_id: str
    name: str
    problems: list[tuple[str, str]]


@dataclass
class ReportView:
    """The report: what was checked, and the profiles that fail."""

    source: str
    source_label: str
    checked: int = 0
    failing_count: int = 0
    failing: list[Failing] = field(default_factory=list)
    unavailable: str | None = None


def segment_choices(session: Session) -> list[tuple[str, str]]:
    """What a report can check: the recent profiles, or the members of an active segment."""
    choices = [("recent", f"The {RECENT} most recently seen profiles")]
    choices += [(str(s.id), f"Segment: {s.name}") for s in active_segments(session) if s.id is not None]
    return choices


def _profiles(session: Session, source: str) -> list[str]:
    if source.isdigit():
        return segment_profile_ids(session, int(source), MAX_SEGMENT)
    return recent_profile_ids(session, RECENT)


def validation_report(session: Session, tenant: Tenant, template: PassTemplate, source: str) -> ReportView:
    """Check the template's pass for each profile of ``source`` (``recent`` or a segment id)."""
    labels = dict(segment_choices(session))
    source = source if source in labels else "recent"
    view = ReportView(source, labels[source])
    try:
        wallet = wallet_for(tenant, template.channel)
    except WalletUnavailable as exc:
        view.unavailable = str(exc)
        return view
    design = PassDesign.model_validate(template.design)
    profile_ids = _profiles(session, source)
    try:
        found = problems_by_profile(session, wallet, design, profile_ids)
    except ChannelNotImplemented as exc:
        view.unavailable = str(exc)
        return view
    form = form_of_design(template.name, template.key, design)
    shown = list(found)[:MAX_SHOWN]
    names = profile_names(session, shown)
    view.checked, view.failing_count = len(profile_ids), len(found)
    view.failing = [Failing(pid, names.get(pid, ""), rendering_problems(found[pid], form)) for pid in shown]
    return view
