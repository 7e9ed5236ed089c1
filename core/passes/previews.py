"""A pass as it would look for any profile, and which profiles could not get one, before issuing.

Both work on an unsaved design too (the editor previews as the marketer types), and never write:
a preview renders as issuing would (a serial in the wallet's format, the images' public links) but
with a made-up serial and token, and nothing is issued.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import Session

from core.passes.context import pass_contexts
from core.passes.design import PassDesign
from core.passes.issuing import addressed, materials_for
from core.passes.rendering import Materials, PassIdentity, render_pass
from core.passes.wallets import Wallet
from core.plugin_api import Preview, Problem, RenderedPass

PREVIEW_TOKEN = "preview-token-not-a-real-one"


@dataclass(frozen=True)
class PreviewResult:
    """The preview of one profile's pass in one language, or the problems that stop that pass."""

    preview: Preview | None
    rendered: RenderedPass | None
    problems: list[Problem]
    languages: list[str]


def _as_issued(
    session: Session, wallet: Wallet, design: PassDesign, key: str
) -> tuple[Materials, PassIdentity]:
    materials = addressed(materials_for(session, design), wallet.ctx.tenant, key, wallet.channel.key)
    web_service_url = wallet.channel.web_service_url(wallet.ctx)
    return materials, PassIdentity(wallet.channel.new_serial(wallet.ctx), PREVIEW_TOKEN, web_service_url)


def render_for(
    session: Session, wallet: Wallet, design: PassDesign, profile_id: str, key: str = "preview"
) -> RenderedPass | list[Problem]:
    """The pass this design (of template ``key``) gives one profile, checked by its wallet (nothing is stored)."""
    context = pass_contexts(session.connection(), [profile_id]).get(profile_id)
    if context is None:
        return [Problem("profile", f"there is no profile {profile_id}")]
    materials, identity = _as_issued(session, wallet, design, key)
    rendered = render_pass(materials, context, identity)
    if isinstance(rendered, list):
        return rendered
    return wallet.channel.check_pass(wallet.ctx, rendered) or rendered


def preview(
    session: Session, wallet: Wallet, design: PassDesign, profile_id: str, language: str, key: str = "preview"
) -> PreviewResult:
    """The front and back of one profile's pass in ``language`` (HTML and PNG), or its problems."""
    rendered = render_for(session, wallet, design, profile_id, key)
    languages = design.languages()
    if isinstance(rendered, list):
        return PreviewResult(None, None, rendered, languages)
    chosen = language if language in languages else design.language
    return PreviewResult(wallet.channel.preview_pass(rendered, chosen), rendered, [], languages)


def problems_by_profile(
    session: Session, wallet: Wallet, design: PassDesign, profile_ids: Sequence[str], key: str = "preview"
) -> dict[str, list[Problem]]:
    """For each profile that could not get this pass, why (profiles that can are left out)."""
    materials, identity = _as_issued(session, wallet, design, key)
    contexts = pass_contexts(session.connection(), list(profile_ids))
    found: dict[str, list[Problem]] = {}
    for profile_id in profile_ids:
        context = contexts.get(profile_id)
        if context is None:
            found[profile_id] = [Problem("profile", "no such profile (it was erased or merged)")]
            continue
        rendered = render_pass(materials, context, identity)
        problems = rendered if isinstance(rendered, list) else wallet.channel.check_pass(wallet.ctx, rendered)
        if problems:
            found[profile_id] = problems
    return found
