"""What the editor's live preview shows: the pass as one profile gets it in one language, or why not.

The form is turned into a design exactly as saving does (:func:`web.pass_pages.to_design.design_of`)
and checked by the library, but nothing is saved: the wallet renders it with a made-up serial. A
wallet that cannot draw passes yet (``ChannelNotImplemented``), one that is not enabled, or a plugin
that fails, is said in words, with the pass's texts as the fallback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlmodel import Session

from core.passes import previews
from core.passes.design import PassDesign
from core.passes.library import LibraryError, check_design
from core.passes.wallets import WalletUnavailable, wallet_for
from core.plugin_api import ChannelNotImplemented, RenderedPass
from core.profiles.models import Profile
from core.profiles.service import pick, recent
from core.tenancy.models import Tenant
from web.campaign_pages.form import FormInvalid
from web.pass_pages.design_form import DesignForm
from web.pass_pages.problems import library_problems, listed, rendering_problems
from web.pass_pages.to_design import design_of

log = logging.getLogger(__name__)


@dataclass
class PreviewView:
    """The preview pane: for whom, in which language, and the pass or what stops it."""

    profile_id: str = ""
    profile_name: str = ""
    language: str = ""
    requested_language: str = ""  # kept while the form cannot be read
    languages: list[str] = field(default_factory=list)
    html: str | None = None
    has_png: bool = False
    form_problems: list[tuple[str, str]] = field(default_factory=list)  # the design cannot be read
    pass_problems: list[tuple[str, str]] = field(default_factory=list)  # this profile's pass cannot be made
    unavailable: str | None = None  # why the wallet shows no preview
    texts: list[tuple[str, str]] = field(default_factory=list)  # the pass's texts, when not drawn

    @property
    def failed(self) -> bool:
        """Whether the preview shows problems rather than a pass."""
        return bool(self.form_problems or self.pass_problems)


def preview_profile(session: Session, typed: str) -> Profile | None:
    """The profile to preview for: the one typed (id, email or name), else the most recently seen one."""
    found = pick(session, typed, limit=1) if typed else recent(session, 1)
    return found[0] if found else None


def _texts(rendered: RenderedPass, language: str) -> list[tuple[str, str]]:
    """The pass's texts in ``language`` (a translation where there is one)."""
    translated = rendered.translations.get(language, {})

    def say(text: str) -> str:
        """The text in ``language``."""
        return translated.get(text, text)

    shown = [("Organization", say(rendered.organization_name)), ("Description", say(rendered.description))]
    shown += [(f"{f.area}: {say(f.label) or f.key}", say(f.value)) for f in rendered.fields]
    if rendered.barcode is not None:
        shown.append((f"Barcode ({rendered.barcode.format})", rendered.barcode.message))
    return shown


def _draw(session: Session, view: PreviewView, tenant: Tenant, channel: str, design: PassDesign,
          form: DesignForm) -> None:  # fmt: skip
    try:
        wallet = wallet_for(tenant, channel)
    except WalletUnavailable as exc:
        view.unavailable = str(exc)
        return
    try:
        result = previews.preview(session, wallet, design, view.profile_id, view.language)
    except ChannelNotImplemented as exc:
        view.unavailable = str(exc)
        rendered = previews.render_for(session, wallet, design, view.profile_id)
        if isinstance(rendered, list):
            view.pass_problems = rendering_problems(rendered, form)
        else:
            view.texts = _texts(rendered, view.language)
        return
    except Exception as exc:  # noqa: BLE001 - a failing plugin must not break the editor
        log.exception("the %s preview failed", channel)
        view.unavailable = f"The wallet's preview failed ({type(exc).__name__}): the pass itself may be fine."
        return
    if result.problems:
        view.pass_problems = rendering_problems(result.problems, form)
    elif result.preview is not None:
        view.html, view.has_png = result.preview.html, result.preview.png is not None


def preview_of(session: Session, tenant: Tenant, channel: str, form: DesignForm) -> PreviewView:
    """The preview of the form as typed (saved or not) for its chosen profile and language."""
    view = PreviewView(requested_language=form.preview_language)
    profile = preview_profile(session, form.preview_profile)
    try:
        design = design_of(form)
        check_design(session, design.model_dump(mode="json"))
    except FormInvalid as exc:
        view.form_problems = listed(exc.problems, form)
        return view
    except LibraryError as exc:
        view.form_problems = listed(library_problems(exc, form), form)
        return view
    view.languages = design.languages()
    view.language = form.preview_language if form.preview_language in view.languages else design.language
    if profile is None:
        view.unavailable = (
            "There is no profile to preview with yet: profiles come in through ingestion or an import."
        )
        return view
    view.profile_id, view.profile_name = profile.id, profile.display_name or profile.id
    _draw(session, view, tenant, channel, design, form)
    return view
