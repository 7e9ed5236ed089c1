"""Issuing passes: render each profile's pass, check it, and keep the issued pass current.

A profile has at most one pass per template and wallet; issuing again re-renders it, keeps its serial and
token (wallets require both to stay), and bumps ``updated_at`` only when what it shows changed.
What changed is what devices are told about (:mod:`core.passes.updates`).
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from core.db.base import as_utc, utcnow
from core.passes.activity import record
from core.passes.context import pass_contexts
from core.passes.contract import RenderedPass
from core.passes.design import PassDesign
from core.passes.links import image_url
from core.passes.models import PassActivityKind, PassImage, PassState, PassTemplate, Store, WalletPass
from core.passes.rendering import Materials, PassIdentity, content_hash, render_pass
from core.passes.wallets import Wallet
from core.plugin_api import Problem
from core.profiles.models import Identity


@dataclass
class Issued:
    """A profile's pass after issuing: the row, what it shows, and whether that changed."""

    wallet_pass: WalletPass
    rendered: RenderedPass
    new: bool = False
    changed: bool = False
    # Keys of fields whose new value a device announces on the lock screen (they have a change message).
    announced: list[str] = field(default_factory=list)


Outcome = Issued | list[Problem]


def materials_for(session: Session, design: PassDesign) -> Materials:
    """A (maybe unsaved) design with its images and stores, loaded once for many passes."""
    wanted = list(design.images.values())
    images = list(session.exec(select(PassImage).where(col(PassImage.id).in_(wanted)))) if wanted else []
    stores = (
        list(session.exec(select(Store).where(col(Store.id).in_(design.store_ids))))
        if design.store_ids
        else []
    )
    return Materials.of(design, images, stores)


def materials_of(session: Session, template: PassTemplate) -> Materials:
    """The materials of a saved template."""
    return materials_for(session, PassDesign.model_validate(template.design))


def addressed(materials: Materials, tenant: str, key: str, channel: str) -> Materials:
    """The materials as one tenant's template (``key``, on ``channel``) issues them: its key, its
    settings for that wallet and the public links of its images."""
    return replace(
        materials,
        template_key=key,
        wallet_settings=materials.design.wallet_settings.get(channel, {}),
        image_urls={kind: image_url(tenant, image_id) for kind, image_id in materials.image_ids.items()},
    )


def issue(
    session: Session,
    wallet: Wallet,
    template: PassTemplate,
    profile_ids: Collection[str],
    *,
    delivery_ids: dict[str, int] | None = None,
    now: datetime | None = None,
    materials: Materials | None = None,
) -> dict[str, Outcome]:
    """Issue or re-issue the pass of ``template`` in ``wallet`` to each profile; per profile the pass or
    its problems (all of them refused when the template is not issued in that wallet).

    Nothing is written for a profile with problems (its existing pass, if any, stays as it was).
    The caller commits, then tells devices of changed passes.
    """
    assert template.id is not None
    now = now or utcnow()
    ids = list(dict.fromkeys(profile_ids))
    channel = wallet.channel.key
    if channel not in template.wallets():
        refused = [Problem("channel", f"this template is not issued in {wallet.channel.label}")]
        return dict.fromkeys(ids, refused)
    materials = addressed(
        materials or materials_of(session, template), wallet.ctx.tenant, template.key, channel
    )
    contexts = pass_contexts(session.connection(), ids)
    query = select(WalletPass).where(
        WalletPass.template_id == template.id,
        WalletPass.channel == channel,
        col(WalletPass.profile_id).in_(ids),
    )
    existing = {row.profile_id: row for row in session.exec(query)}
    web_service_url = wallet.channel.web_service_url(wallet.ctx)
    outcomes: dict[str, Outcome] = {}
    for profile_id in ids:
        context = contexts.get(profile_id)
        if context is None:
            outcomes[profile_id] = [Problem("profile", "no such profile (it was erased or merged)")]
            continue
        row = existing.get(profile_id)
        new = row is None
        if row is None:
            row = WalletPass(
                serial=wallet.channel.new_serial(wallet.ctx), channel=channel, template_id=template.id, profile_id=profile_id,
                authentication_token=secrets.token_urlsafe(24), issued_at=now, updated_at=whole_second(now),
            )  # fmt: skip
        identity = PassIdentity(
            row.serial, row.authentication_token, web_service_url, row.state != PassState.active, row.notice
        )
        rendered = render_pass(materials, context, identity, now)
        if isinstance(rendered, list):
            outcomes[profile_id] = rendered
            continue
        problems = wallet.channel.check_pass(wallet.ctx, rendered)
        if problems:
            outcomes[profile_id] = problems
            continue
        outcomes[profile_id] = _keep(session, row, rendered, materials, new, now, delivery_ids or {})
    return outcomes


def _keep(
    session: Session,
    row: WalletPass,
    rendered: RenderedPass,
    materials: Materials,
    new: bool,
    now: datetime,
    delivery_ids: dict[str, int],
) -> Issued:
    digest = content_hash(rendered, materials)
    shown = {f.key: f.value for f in rendered.fields}
    changed = not new and digest != row.content_hash
    announced = [
        f.key for f in rendered.fields if f.change_message and changed and row.shown.get(f.key) != f.value
    ]
    if new:
        row.delivery_id = delivery_ids.get(row.profile_id)
        session.add(row)
        session.add(Identity(type="pass_serial", value=row.serial, profile_id=row.profile_id,
                             origin_profile_id=row.profile_id, first_seen=now))  # fmt: skip
        record(session, row, PassActivityKind.issued, now)
    elif changed:
        row.updated_at = next_version_time(row.updated_at, now)
        record(session, row, PassActivityKind.updated, now, {"announced": announced} if announced else None)
    # Unchanged, the pass keeps its Last-Modified, so devices are not told anything.
    rendered = rendered.model_copy(update={"updated_at": as_utc(row.updated_at)})
    row.content_hash, row.shown = digest, shown
    session.add(row)
    return Issued(row, rendered, new=new, changed=changed, announced=announced)


def whole_second(moment: datetime) -> datetime:
    """``moment`` without its fraction: HTTP dates (Last-Modified) have whole seconds."""
    return moment.replace(microsecond=0)


def next_version_time(previous: datetime, now: datetime) -> datetime:
    """When a changed pass was last modified: now, but always at least a second after the last version.

    Two versions within one second would share a Last-Modified, and a device holding the first
    would be told (304) that it has the second.
    """
    return max(whole_second(now), whole_second(as_utc(previous)) + timedelta(seconds=1))


def pass_by_serial(session: Session, serial: str) -> WalletPass | None:
    """The issued pass with this serial, or None."""
    return session.exec(select(WalletPass).where(WalletPass.serial == serial)).first()


def current(session: Session, wallet: Wallet, row: WalletPass) -> RenderedPass | list[Problem]:
    """The pass as it should show now (re-rendered, and re-dated if its content moved on)."""
    template = session.get(PassTemplate, row.template_id)
    if template is None:
        return [Problem("template", "the template of this pass was deleted")]
    outcome = issue(session, wallet, template, [row.profile_id])[row.profile_id]
    return outcome if isinstance(outcome, list) else outcome.rendered
