"""What happens to issued passes, kept for reports and shown on the profile's timeline.

Installs and removals are also delivery moments: a pass issued by a campaign or journey marks
its delivery ``installed_at`` / ``removed_at``, so the one delivery report counts wallets like
every other channel. Every install and removal appears on the timeline as "Pass Installed" /
"Pass Removed", whichever way the pass was issued.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from core.db.base import utcnow
from core.delivery.statuses import TIMELINE, apply_channel_events
from core.internal_events.service import emit_many
from core.passes.models import PassActivity, PassActivityKind, WalletPass
from core.plugin_api import ChannelEvent, DeliveryStatus

CUSTOMER_MOMENTS = {
    PassActivityKind.installed: DeliveryStatus.installed,
    PassActivityKind.removed: DeliveryStatus.removed,
}


def record(
    session: Session,
    row: WalletPass,
    kind: PassActivityKind,
    at: datetime | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Keep one moment of a pass's life (and, for installs and removals, tell the timeline)."""
    at = at or utcnow()
    session.add(PassActivity(serial=row.serial, template_id=row.template_id, profile_id=row.profile_id,
                             channel=row.channel, kind=kind, at=at, detail=detail or {}))  # fmt: skip
    status = CUSTOMER_MOMENTS.get(kind)
    if status is None:
        return
    matched = 0
    if row.delivery_id is not None:
        event = ChannelEvent(status=status, delivery_id=str(row.delivery_id), occurred_at=at)
        matched = apply_channel_events(session, row.channel, [event])
    if not matched:  # no delivery to hang it on (issued by the API or a link): the timeline still shows it
        properties = {"channel": row.channel, "serial": row.serial, "template_id": row.template_id}
        emit_many(session, [{"name": TIMELINE[status], "profile_id": row.profile_id, "occurred_at": at,
                             "properties": properties}])  # fmt: skip
