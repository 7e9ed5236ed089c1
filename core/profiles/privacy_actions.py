"""Sensitive actions on one person, each audited in the control database.

Consent changes, export, erasure and undoing a merge: the tenant-database work and the audit entry
(who, when, from where, which profile id — never the person's identifiers) go together.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from core.audit.service import Origin, record
from core.consent import service as consent
from core.db.base import utcnow
from core.db.engines import control_session, tenant_session
from core.identity.graph import Rules
from core.identity.identifiers import normalize_phone
from core.plugins import get_host
from core.privacy.service import erase_person, export_person
from core.profiles.jobs import identifier_types_for
from core.profiles.resolution import undo_merge
from core.tenancy.models import Tenant
from core.tenancy.plugin_settings import enabled_plugins


def _audit(
    tenant: Tenant, actor: str, action: str, target: str, detail: dict[str, Any], origin: Origin
) -> None:
    with control_session() as session:
        record(
            session, actor=actor, action=action, tenant_id=tenant.id, target=target, detail=detail, **origin
        )
        session.commit()


def _types(tenant: Tenant) -> dict[str, Any]:
    with control_session() as session:
        return identifier_types_for(enabled_plugins(session, tenant, get_host()))


def normalize_identifier(tenant: Tenant, type_: str, value: str) -> str:
    """An identifier as it is stored, using the tenant's region for phones; ValueError if invalid."""
    types = _types(tenant)
    if type_ not in types:
        raise ValueError(f"Unknown identifier type {type_!r}; known: {', '.join(sorted(types))}.")
    return (
        normalize_phone(value, tenant.default_region) if type_ == "phone" else types[type_].normalize(value)
    )


def record_consent(
    session: Session,
    profile_id: str,
    channel: str,
    purpose: str,
    granted: bool,
    *,
    source: str,
    at: datetime | None,
) -> None:
    """Record a consent statement given through the API or the UI."""
    consent.record(
        session, profile_id, consent.Statement(channel, purpose, granted), source=source, at=at or utcnow()
    )


def export(tenant: Tenant, profile_id: str, actor: str, origin: Origin) -> dict[str, Any]:
    """Everything held on the person; the export is audited."""
    with tenant_session(tenant.database) as session:
        data = export_person(session, profile_id)
    _audit(tenant, actor, "privacy.export", data["profile"]["id"], {"events": len(data["events"])}, origin)
    return data


def erase(tenant: Tenant, profile_id: str, actor: str, origin: Origin) -> dict[str, Any]:
    """Erase the person; the erasure (counts only) is audited."""
    with tenant_session(tenant.database) as session:
        result = erase_person(session, profile_id)
        session.commit()
    detail = result.__dict__
    _audit(tenant, actor, "privacy.erase", profile_id, detail, origin)
    return {"erased": profile_id, **detail}


def undo(tenant: Tenant, merge_id: int, actor: str, origin: Origin) -> dict[str, Any]:
    """Undo a merge and replay the identity graph; audited."""
    rules = Rules.from_types(_types(tenant))
    with tenant_session(tenant.database) as session:
        merge = undo_merge(session, merge_id, actor, rules)
        session.commit()
    detail = {"survivor": merge.survivor_id, "restored": merge.absorbed_id}
    _audit(tenant, actor, "identity.unmerge", f"merge {merge_id}", detail, origin)
    return {"merge": merge_id, **detail}
