"""Passes follow the person when two profiles merge.

A merged-away profile's passes move to the surviving profile. Where the survivor already holds a
pass of the same template in the same wallet, the merged-away one is voided: one person, one card
per template and wallet.
Either way the passes are re-issued with the survivor's data, since the profile's merge changed
what they show (the survivor's processing marks it changed).
"""

from __future__ import annotations

from sqlmodel import Session, select

from core.db.base import utcnow
from core.passes.activity import record
from core.passes.issuing import next_version_time
from core.passes.models import PassActivityKind, PassState, WalletPass


def absorb(session: Session, absorbed_id: str, survivor_id: str) -> None:
    """Move the merged-away profile's passes to the survivor (voiding duplicates of a template and wallet)."""
    held = {
        (row.template_id, row.channel)
        for row in session.exec(select(WalletPass).where(WalletPass.profile_id == survivor_id))
    }
    now = utcnow()
    for row in session.exec(select(WalletPass).where(WalletPass.profile_id == absorbed_id)).all():
        if (row.template_id, row.channel) not in held:
            row.profile_id = survivor_id
            held.add((row.template_id, row.channel))
        elif row.state == PassState.active:
            row.state, row.voided_at = PassState.voided, now
            row.updated_at = next_version_time(row.updated_at, now)
            record(session, row, PassActivityKind.voided, now, {"reason": f"merged into {survivor_id}"})
        session.add(row)
