"""What happened to a template's passes, counted from their activity: the wallet report.

Clicks are visits of the landing page, downloads are pass files fetched (from the page or by a
device), installs and removals are device registrations, updates are new versions, pushes are
devices told of them. ``installed_now`` is how many devices hold a pass at this moment.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection

from sqlalchemy import func
from sqlmodel import Session, col, select

from core.passes.models import PassActivity, PassActivityKind, PassRegistration, PassState, WalletPass

COUNTED = tuple(kind.value for kind in PassActivityKind)


def activity_counts(
    session: Session, template_ids: Collection[int] | None = None
) -> dict[int, dict[str, int]]:
    """Per template: how many of each activity (``pushed`` counts devices told), passes by state, and devices now."""
    counts: defaultdict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTED, 0))
    kinds = select(PassActivity.template_id, PassActivity.kind, func.count()).group_by(
        col(PassActivity.template_id), col(PassActivity.kind)
    )
    states = select(WalletPass.template_id, WalletPass.state, func.count()).group_by(
        col(WalletPass.template_id), col(WalletPass.state)
    )
    devices = (
        select(WalletPass.template_id, func.count())
        .join(PassRegistration, col(PassRegistration.serial) == col(WalletPass.serial))
        .group_by(col(WalletPass.template_id))
    )
    if template_ids is not None:
        wanted = list(template_ids)
        kinds = kinds.where(col(PassActivity.template_id).in_(wanted))
        states = states.where(col(WalletPass.template_id).in_(wanted))
        devices = devices.where(col(WalletPass.template_id).in_(wanted))
    for template_id, kind, number in session.exec(kinds):
        counts[template_id][str(kind)] = number
    for template_id, state, number in session.exec(states):
        counts[template_id][f"passes_{PassState(state).value}"] = number
    for template_id, number in session.exec(devices):
        counts[template_id]["installed_now"] = number
    return {template_id: dict(found) for template_id, found in counts.items()}
