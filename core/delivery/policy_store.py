"""The tenant's sending policy, kept in its database (one row), read by every send."""

from __future__ import annotations

from sqlmodel import Session

from core.db.base import utcnow
from core.delivery.models import SendingPolicy
from core.messages.policy import Policy


def get_policy(session: Session) -> Policy:
    """The tenant's policy (no caps, no quiet hours, no rate limits until one is saved)."""
    row = session.get(SendingPolicy, 1)
    return Policy.model_validate(row.policy) if row else Policy()


def save_policy(session: Session, policy: Policy, actor: str) -> Policy:
    """Replace the tenant's policy; the caller commits (and audits)."""
    row = session.get(SendingPolicy, 1) or SendingPolicy(id=1)
    row.policy = policy.model_dump(mode="json")
    row.updated_at = utcnow()
    row.updated_by = actor
    session.add(row)
    return policy
