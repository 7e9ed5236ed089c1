"""Read-only views of profiles for plugins (:class:`core.plugin_api.ProfileSnapshot`)."""

from __future__ import annotations

from collections import defaultdict

from sqlmodel import Session

from core.consent.service import current
from core.plugin_api import ProfileSnapshot
from core.profiles.models import Profile
from core.profiles.service import identities_of


def snapshot(session: Session, profile_id: str) -> ProfileSnapshot | None:
    """The profile as plugins see it, or None if it is gone or merged away."""
    profile = session.get(Profile, profile_id)
    if profile is None or profile.merged_into:
        return None
    identifiers: defaultdict[str, list[str]] = defaultdict(list)
    for identity in identities_of(session, profile_id):
        identifiers[identity.type].append(identity.value)
    consents = {f"{c.channel}.{c.purpose}": c.granted for c in current(session, profile_id)}
    for c in current(session, profile_id):
        if c.purpose == "marketing":
            consents[c.channel] = c.granted
    traits = dict(profile.traits)
    return ProfileSnapshot(
        id=profile.id, identifiers=dict(identifiers), traits=traits, consents=consents,
        locale=traits.get("locale") if isinstance(traits.get("locale"), str) else None,
        timezone=traits.get("timezone") if isinstance(traits.get("timezone"), str) else None,
    )  # fmt: skip
