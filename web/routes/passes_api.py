"""The wallet passes API: templates, issuing a profile's pass, a profile's passes, revocation.

``POST /api/v1/passes`` issues (or re-issues) one profile's pass of one template and answers
with its serial, channel and links; a pass that cannot be built answers 422 with the problems,
each naming the text or setting at fault. Unknown templates and profiles answer 404; a wallet
that is not enabled or not configured answers 409.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from core.db.engines import tenant_session
from core.passes import library
from core.passes.issuing import Issued, issue, pass_by_serial
from core.passes.links import download_url, landing_url, qr_url
from core.passes.models import PassActivity, PassActivityKind, PassTemplate, WalletPass
from core.passes.report import activity_counts
from core.passes.updates import notify, void
from core.passes.wallets import WalletUnavailable, wallet_channels, wallet_for
from core.profiles.service import ProfileNotFound, get_profile
from core.tenancy.roles import Permission
from web.auditing import audit_change
from web.auth import ControlDB, Principal, require

router = APIRouter(prefix="/api/v1", tags=["passes"])
Reader = Annotated[Principal, Depends(require(Permission.read_data, api=True))]
Marketer = Annotated[Principal, Depends(require(Permission.write_marketing, api=True))]


class PassIn(BaseModel):
    """Which template's pass to issue to which profile, in which of the template's wallets (its own by default)."""

    model_config = ConfigDict(extra="forbid")
    template_id: int
    profile_id: str = Field(min_length=1, max_length=40)
    channel: str | None = Field(default=None, max_length=100)


class TemplateIn(BaseModel):
    """A pass template: its key (used in message texts), name, wallet, other wallets and design."""

    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=60)
    name: str = Field(min_length=1, max_length=200)
    channel: str = Field(min_length=1, max_length=100)
    other_channels: list[str] = []
    design: dict[str, Any]


class VoidIn(BaseModel):
    """Why a pass is revoked."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=300)


def template_json(template: PassTemplate, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """A template as the API shows it, with what happened to its passes (``counts``)."""
    design = template.design
    return {
        "id": template.id, "key": template.key, "name": template.name, "channel": template.channel,
        "channels": template.wallets(),
        "style": design.get("style"), "languages": [design.get("language"), *sorted(design.get("translations", {}))],
        "archived": template.archived, "issued": (counts or {}).get("issued", 0),
        "counts": counts or {}, "updated_at": template.updated_at.isoformat(), "design": design,
    }  # fmt: skip


def pass_json(tenant: str, row: WalletPass) -> dict[str, Any]:
    """An issued pass as the API shows it, with its public links.

    A pass of a hosted wallet (Google) also has ``save_url``: the same signed link, which sends
    the customer on to the wallet's save page with a freshly signed save token.
    """
    data = {
        "serial": row.serial, "channel": row.channel, "template_id": row.template_id, "profile_id": row.profile_id,
        "state": row.state, "issued_at": row.issued_at.isoformat(), "updated_at": row.updated_at.isoformat(),
        "voided_at": row.voided_at.isoformat() if row.voided_at else None,
        "download_url": download_url(tenant, row.template_id, row.profile_id, row.channel),
        "landing_url": landing_url(tenant, row.template_id, row.profile_id),
        "qr_url": qr_url(tenant, row.template_id, row.profile_id),
    }  # fmt: skip
    channel = wallet_channels().get(row.channel)
    if channel is not None and channel.hosted:
        data["save_url"] = data["download_url"]
    return data


def _template(session: Session, template_id: int) -> PassTemplate:
    found = session.get(PassTemplate, template_id)
    if found is None or found.archived:
        raise HTTPException(404, f"There is no pass template {template_id}.")
    return found


@router.get("/pass-templates")
def list_templates(principal: Reader) -> list[dict[str, Any]]:
    """The tenant's pass templates, with what happened to their passes (issued, clicks, downloads,
    installs, removals, updates, pushes; passes by state; devices holding one now)."""
    with tenant_session(principal.tenant.database) as session:
        counts = activity_counts(session)
        return [template_json(t, counts.get(t.id or 0)) for t in library.templates(session)]


@router.post("/pass-templates", status_code=201)
def create_template(body: TemplateIn, request: Request, control: ControlDB, principal: Marketer) -> Any:
    """Create a pass template (422 with the problems of an invalid design)."""
    with tenant_session(principal.tenant.database) as session:
        try:
            template = library.save_template(session, key=body.key, name=body.name, channel=body.channel,
                                             design=body.design, by=principal.actor,
                                             other_channels=body.other_channels)  # fmt: skip
        except library.LibraryError as exc:
            return JSONResponse({"detail": str(exc), "problems": _problems(exc.problems)}, status_code=422)
        session.commit()
        audit_change(request, control, principal, "passes.template.create", f"pass template {template.id}",
                     name=template.name, channel=template.channel)  # fmt: skip
        return template_json(template)


@router.post("/passes")
def issue_pass(body: PassIn, request: Request, control: ControlDB, principal: Marketer) -> Any:
    """Issue or re-issue one profile's pass of a template: its serial, channel and download links."""
    tenant = principal.tenant
    with tenant_session(tenant.database) as session:
        template = _template(session, body.template_id)
        try:
            profile = get_profile(session, body.profile_id)
        except ProfileNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        channel = body.channel or template.channel
        if channel not in template.wallets():
            raise HTTPException(422, f"Template {template.key!r} is issued in {', '.join(template.wallets())}, "
                                     f"not in {channel!r}.")  # fmt: skip
        try:
            wallet = wallet_for(tenant, channel)
        except WalletUnavailable as exc:
            raise HTTPException(409, str(exc)) from exc
        outcome = issue(session, wallet, template, [profile.id])[profile.id]
        if not isinstance(outcome, Issued):
            return JSONResponse({"detail": "This profile's pass cannot be built.",
                                 "problems": [{"field": p.field, "message": p.message} for p in outcome]},
                                status_code=422)  # fmt: skip
        session.commit()
    if outcome.changed or outcome.new:
        notify(tenant, [outcome])
    audit_change(request, control, principal, "passes.issue", f"pass {outcome.wallet_pass.serial}",
                 template_id=template.id, profile_id=profile.id, new=outcome.new)  # fmt: skip
    status = 201 if outcome.new else 200
    return JSONResponse(pass_json(tenant.slug, outcome.wallet_pass), status_code=status)


@router.get("/passes/{serial}")
def get_pass(serial: str, principal: Reader) -> dict[str, Any]:
    """One issued pass, with its devices and what happened to it."""
    with tenant_session(principal.tenant.database) as session:
        row = pass_by_serial(session, serial)
        if row is None:
            raise HTTPException(404, f"There is no pass {serial}.")
        activity = session.exec(
            select(PassActivity)
            .where(PassActivity.serial == serial)
            .order_by(col(PassActivity.id).desc())
            .limit(50)
        ).all()
        data = pass_json(principal.tenant.slug, row)
        data["activity"] = [{"kind": a.kind, "at": a.at.isoformat(), "detail": a.detail} for a in activity]
        data["installed"] = _installed(activity)
        return data


@router.post("/passes/{serial}/void")
def void_pass(
    serial: str, body: VoidIn, request: Request, control: ControlDB, principal: Marketer
) -> dict[str, Any]:
    """Revoke a pass: the wallet shows it void, and the devices holding it are told at once."""
    tenant = principal.tenant
    with tenant_session(tenant.database) as session:
        row = pass_by_serial(session, serial)
        if row is None:
            raise HTTPException(404, f"There is no pass {serial}.")
        void(session, tenant, row, body.reason, principal.actor)
        session.commit()
    notify(tenant, [row])
    audit_change(request, control, principal, "passes.void", f"pass {serial}", reason=body.reason)
    return pass_json(tenant.slug, row)


@router.get("/profiles/{profile_id}/passes")
def profile_passes(profile_id: str, principal: Reader) -> list[dict[str, Any]]:
    """The passes issued to a profile (following merges), newest first."""
    with tenant_session(principal.tenant.database) as session:
        try:
            profile = get_profile(session, profile_id)
        except ProfileNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        rows = session.exec(
            select(WalletPass).where(WalletPass.profile_id == profile.id).order_by(col(WalletPass.id).desc())
        ).all()
        return [pass_json(principal.tenant.slug, row) for row in rows]


def _installed(activity: Any) -> bool:
    """Whether the newest install or removal was an install."""
    for moment in activity:
        if moment.kind in (PassActivityKind.installed, PassActivityKind.removed):
            return bool(moment.kind == PassActivityKind.installed)
    return False


def _problems(problems: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"field": where, "message": what} for where, what in problems]
