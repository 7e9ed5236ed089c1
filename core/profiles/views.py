"""A profile as the API and the UI present it."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from core.consent import service as consent
from core.profiles.service import get_profile, identities_of, merges_of
from core.segments.service import memberships_of
from core.traits.service import traits_of


def profile_view(session: Session, profile_id: str, full: bool = True) -> dict[str, Any]:
    """The profile's identities, traits, consents (and, in full, consent history, merges, segments)."""
    profile = get_profile(session, profile_id)
    view: dict[str, Any] = {
        "id": profile.id,
        "display_name": profile.display_name,
        "first_seen": profile.first_seen.isoformat() if profile.first_seen else None,
        "last_seen": profile.last_seen.isoformat() if profile.last_seen else None,
        "identities": [
            {
                "type": i.type,
                "value": i.value,
                **({"retired_at": i.retired_at.isoformat()} if i.retired_at else {}),
            }
            for i in identities_of(session, profile.id)
        ],
        "traits": profile.traits,
        "computed_traits": _computed(session, profile.id),
    }
    if full:
        view["consents"] = [
            c.model_dump(mode="json", exclude={"id", "profile_id"})
            for c in consent.current(session, profile.id)
        ]
        view["consent_history"] = [
            c.model_dump(mode="json", exclude={"id", "profile_id"})
            for c in consent.history(session, profile.id)
        ]
        view["merges"] = [m.model_dump(mode="json") for m in merges_of(session, profile.id)]
        view["segments"] = [
            {"id": segment.id, "name": segment.name, "entered_at": stay.entered_at.isoformat()}
            for segment, stay in memberships_of(session, profile.id)
        ]
    return view


def _computed(session: Session, profile_id: str) -> dict[str, Any] | None:
    """RFM, churn risk, propensity and value (None before the first purchase)."""
    computed = traits_of(session, profile_id)
    return computed.model_dump(mode="json", exclude={"profile_id", "details"}) if computed else None
