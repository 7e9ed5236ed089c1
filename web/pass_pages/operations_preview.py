"""Step 6 of a pass operation: the Apple and Google passes side by side for one profile and language,
and the validation report (which members of the segment would get no pass, and why).

A wallet whose preview is not there yet, not enabled, or failing is said in words, with the pass's
texts instead; the report lists the first members that fail, checked as issuing would check them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlmodel import Session

from core.operations.audience import members
from core.operations.models import PassOperation
from core.operations.service import WALLETS
from core.passes.design import PassDesign
from core.passes.models import PassTemplate
from core.passes.previews import problems_by_profile, render_for
from core.passes.ui_queries import profile_names
from core.passes.wallets import WalletUnavailable, wallet_for
from core.plugin_api import ChannelNotImplemented, Problem, RenderedPass
from core.segments.service import TenantScope
from core.tenancy.models import Tenant
from web.pass_pages.preview_view import preview_profile

log = logging.getLogger(__name__)
CHECKED = 1000  # members checked by the report
LISTED = 50


@dataclass
class WalletPreview:
    """One wallet's pass for the profile: the wallet's drawing, or its texts and why there is no drawing."""

    channel: str
    label: str
    template_name: str
    html: str | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)
    unavailable: str | None = None
    texts: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Failing:
    """A member who would get no pass of one wallet, and why."""

    profile_id: str
    name: str
    wallet: str
    problems: list[tuple[str, str]]


@dataclass
class SideBySide:
    """The previews of every chosen wallet for one profile and language, and the validation report."""

    profile_id: str = ""
    profile_name: str = ""
    language: str = ""
    languages: list[str] = field(default_factory=list)
    wallets: list[WalletPreview] = field(default_factory=list)
    checked: int = 0
    failing_count: dict[str, int] = field(default_factory=dict)
    failing: list[Failing] = field(default_factory=list)


def _texts(rendered: RenderedPass, language: str) -> list[tuple[str, str]]:
    said = rendered.translations.get(language, {})
    shown = [("Organization", said.get(rendered.organization_name, rendered.organization_name))]
    shown += [(said.get(f.label, f.label) or f.key, said.get(f.value, f.value)) for f in rendered.fields]
    return shown


def _listed(problems: list[Problem]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((p.field, p.message) for p in problems))


def _draw(session: Session, tenant: Tenant, template: PassTemplate, view: WalletPreview, profile_id: str,
          language: str) -> None:  # fmt: skip
    try:
        wallet = wallet_for(tenant, template.channel)
    except WalletUnavailable as exc:
        view.unavailable = str(exc)
        return
    rendered = render_for(
        session, wallet, PassDesign.model_validate(template.design), profile_id, template.key
    )
    if isinstance(rendered, list):
        view.problems = _listed(rendered)
        return
    try:
        view.html = wallet.channel.preview_pass(rendered, language).html
    except ChannelNotImplemented as exc:
        view.unavailable, view.texts = str(exc), _texts(rendered, language)
    except Exception as exc:  # noqa: BLE001 - a failing plugin must not break the page
        log.exception("the %s preview failed", template.channel)
        view.unavailable = (
            f"The {view.label} preview failed ({type(exc).__name__}): the pass itself may be fine."
        )
        view.texts = _texts(rendered, language)


def side_by_side(
    session: Session, tenant: Tenant, scope: TenantScope, operation: PassOperation, typed: str, language: str
) -> SideBySide:
    """The chosen wallets' passes for the typed profile (else the most recently seen one) in ``language``."""
    found = SideBySide()
    templates = {c: session.get(PassTemplate, t) for c, t in operation.template_ids().items()}
    languages: list[str] = []
    for template in templates.values():
        if template is not None:
            languages += [
                x for x in PassDesign.model_validate(template.design).languages() if x not in languages
            ]
    found.languages = languages
    found.language = language if language in languages else (languages[0] if languages else "")
    profile = preview_profile(session, typed)
    if profile is not None:
        found.profile_id, found.profile_name = profile.id, profile.display_name or profile.id
    for channel, template in templates.items():
        view = WalletPreview(channel, WALLETS[channel], template.name if template else "(deleted)")
        found.wallets.append(view)
        if template is None:
            view.unavailable = "The template was deleted."
        elif profile is None:
            view.unavailable = "There is no profile to preview with yet."
        else:
            _draw(session, tenant, template, view, profile.id, found.language)
    _report(session, tenant, scope, operation, templates, found)
    return found


def _report(session: Session, tenant: Tenant, scope: TenantScope, operation: PassOperation,
            templates: dict[str, PassTemplate | None], found: SideBySide) -> None:  # fmt: skip
    if operation.segment_id is None:
        return
    try:
        ids = members(session, scope, operation.segment_id)[:CHECKED]
    except LookupError:
        return
    found.checked = len(ids)
    failing: list[tuple[str, str, list[Problem]]] = []
    for channel, template in templates.items():
        if template is None:
            continue
        try:
            design = PassDesign.model_validate(template.design)
            problems = problems_by_profile(session, wallet_for(tenant, channel), design, ids, template.key)
        except WalletUnavailable:
            continue
        found.failing_count[WALLETS[channel]] = len(problems)
        failing += [(pid, WALLETS[channel], listed) for pid, listed in problems.items()]
    shown = failing[:LISTED]
    names = profile_names(session, [pid for pid, _, _ in shown])
    found.failing = [Failing(pid, names.get(pid, ""), wallet, _listed(p)) for pid, wallet, p in shown]
