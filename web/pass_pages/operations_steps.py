"""The seven steps of a pass operation as pages: what each step shows, and saving what it posts.

Each step reads its form into the service call of :mod:`core.operations.service` (or
:mod:`core.operations.personalization`); a refusal comes back as :class:`OperationInvalid`, whose
problems the page shows by their inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from core.operations import personalization, service
from core.operations.audience import estimate, members
from core.operations.errors import OperationInvalid
from core.operations.models import PassOperation
from core.passes import library
from core.passes.links import landing_url, qr_url
from core.passes.models import PassTemplate
from core.passes.wallets import wallet_channels
from core.segments.service import TenantScope, active_segments
from core.tenancy.models import Tenant
from web.campaign_pages.form import Problems
from web.pass_pages.bindings import bindable_values

STEPS = (
    "The operation",
    "Pass templates",
    "Personalization",
    "Audience",
    "Distribution",
    "Preview",
    "Launch",
)
Posted = Mapping[str, list[str]]


@dataclass(frozen=True)
class Example:
    """One profile's links, to show what each customer gets (links are per profile)."""

    profile_id: str
    landing: str
    qr: str


def one(posted: Posted, name: str) -> str:
    """The first value posted for ``name`` (blank if none)."""
    values = posted.get(name) or [""]
    return values[0]


def problems_of(exc: OperationInvalid) -> Problems:
    """A refusal's problems by input (blank: the whole step)."""
    problems = Problems()
    for where, what in exc.problems:
        problems.add(where or None, what)
    return problems


def message_channels(scope: TenantScope) -> dict[str, str]:
    """The tenant's enabled channels that carry messages (wallets carry passes, not links), by key."""
    wallets = set(wallet_channels())
    return {key: channel.label for key, channel in sorted(scope.channels.items()) if key not in wallets}


def _optional_id(posted: Posted, name: str) -> int | None:
    text = one(posted, name).strip()
    if not text:
        return None
    if not text.isdigit():
        raise OperationInvalid([(name, f"“{text}” is not a template.")])
    return int(text)


def save_step(
    session: Session, tenant: Tenant, scope: TenantScope, operation: PassOperation, step: int, posted: Posted,
    actor: str,
) -> None:  # fmt: skip
    """Save what step ``step`` posted; :class:`OperationInvalid` if it is refused."""
    if step == 1:
        service.save_basics(session, actor, one(posted, "name"), one(posted, "goal"), one(posted, "starts_on"),
                            one(posted, "ends_on"), operation)  # fmt: skip
    elif step == 2:
        apple, google = _optional_id(posted, "apple_template_id"), _optional_id(posted, "google_template_id")
        service.save_templates(session, operation, apple, google, actor)
    elif step == 3:
        bindings = {
            field.key: personalization.Binding(
                one(posted, f"bind.{field.key}.source").strip(),
                one(posted, f"bind.{field.key}.format") or "text",
                one(posted, f"bind.{field.key}.fallback"),
            )  # fmt: skip
            for field in personalization.pass_fields(session, operation)
            if one(posted, f"bind.{field.key}.source").strip()
        }
        personalization.save_personalization(session, tenant.slug, operation, bindings, actor)
    elif step == 4:
        segment = one(posted, "segment_id").strip()
        if segment and not segment.isdigit():
            raise OperationInvalid([("segment_id", f"“{segment}” is not a segment.")])
        service.save_audience(session, operation, int(segment) if segment else None, actor)
    elif step == 5:
        service.save_distribution(session, operation, posted.get("channels") or [], bool(one(posted, "qr")),
                                  bool(one(posted, "web")), message_channels(scope), actor)  # fmt: skip


def _examples(session: Session, tenant: Tenant, scope: TenantScope, operation: PassOperation) -> list[Any]:
    """Per chosen template, one sample member's landing link and QR code (or nothing without members)."""
    if operation.segment_id is None:
        return []
    found = members(session, scope, operation.segment_id)[:1]
    if not found:
        return []
    shown = []
    for channel, template_id in operation.template_ids().items():
        shown.append((service.WALLETS[channel], Example(found[0], landing_url(tenant.slug, template_id, found[0]),
                                                        qr_url(tenant.slug, template_id, found[0]))))  # fmt: skip
    return shown


def step_view(
    session: Session, tenant: Tenant, scope: TenantScope, operation: PassOperation | None, step: int,
    posted: Posted | None,
) -> dict[str, Any]:  # fmt: skip
    """What step ``step``'s page shows: the form's values (as posted, else as saved) and its choices."""
    view: dict[str, Any] = {"steps": STEPS, "step": step, "posted": posted}
    if step == 1:
        names = ("name", "goal", "starts_on", "ends_on")
        if posted:
            view["values"] = {name: one(posted, name) for name in names}
        else:
            saved = operation.model_dump() if operation else {}
            view["values"] = {name: str(saved.get(name) or "") for name in names}
        return view
    assert operation is not None
    if step == 2:
        templates = library.templates(session)
        view["choices"] = {
            channel: [(t.id, t.name) for t in templates if channel in t.wallets()]
            for channel in service.WALLETS
        }
        view["chosen"] = {
            "wallet_apple": one(posted, "apple_template_id") if posted else str(operation.apple_template_id or ""),
            "wallet_google": one(posted, "google_template_id") if posted else str(operation.google_template_id or ""),
        }  # fmt: skip
    elif step == 3:
        view["fields"] = personalization.pass_fields(session, operation)
        view["groups"] = bindable_values(session)
        view["formats"] = personalization.FORMATS
        bindings = operation.personalization
        view["bound"] = {
            field.key: (
                {"source": one(posted, f"bind.{field.key}.source"), "format": one(posted, f"bind.{field.key}.format"),
                 "fallback": one(posted, f"bind.{field.key}.fallback")}
                if posted else bindings.get(field.key, {})
            )
            for field in view["fields"]
        }  # fmt: skip
    elif step == 4:
        view["segments"] = [(s.id, s.name) for s in active_segments(session)]
        chosen = one(posted, "segment_id") if posted else str(operation.segment_id or "")
        view["chosen"] = chosen
        view["reach"] = reach_of(session, tenant, scope, operation, chosen)
    elif step == 5:
        view["channels"] = message_channels(scope)
        distribution = operation.distribution
        view["chosen"] = (
            set(posted.get("channels") or []) if posted else set(distribution.get("channels", []))
        )
        view["qr"] = bool(one(posted, "qr")) if posted else bool(distribution.get("qr", True))
        view["web"] = bool(one(posted, "web")) if posted else bool(distribution.get("web", True))
        view["examples"] = _examples(session, tenant, scope, operation)
        view["keys"] = {service.WALLETS[c]: t.key for c, t in _templates(session, operation).items()}
    elif step == 7:
        view["missing"] = service.missing_steps(operation)
        view["templates"] = {service.WALLETS[c]: t.name for c, t in _templates(session, operation).items()}
        view["channels"] = message_channels(scope)
    return view


def _templates(session: Session, operation: PassOperation) -> dict[str, PassTemplate]:
    found = {}
    for channel, template_id in operation.template_ids().items():
        template = session.get(PassTemplate, template_id)
        if template is not None:
            found[channel] = template
    return found


def reach_of(
    session: Session, tenant: Tenant, scope: TenantScope, operation: PassOperation, segment: str
) -> Any:
    """The audience of a segment (chosen, perhaps not saved yet) for this operation's templates, or None."""
    if not segment.isdigit():
        return None
    trial = operation.model_copy(update={"segment_id": int(segment)})
    try:
        return estimate(session, tenant, scope, trial)
    except LookupError:
        return None
