"""Devices that installed passes: registration, what changed since a device last asked, its logs.

These are the storage side of a wallet's device web service (Apple's PassKit web service):
the wallet plugin serves the HTTP endpoints and calls these through :mod:`core.plugin_api`.
A registration is the "pass installed" moment; removing the last one is "pass removed".
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from core.db.base import as_utc
from core.passes.activity import record
from core.passes.models import DeviceLog, PassActivityKind, PassRegistration, WalletPass

MAX_LOG_MESSAGES = 100


@dataclass(frozen=True)
class Updated:
    """The serials changed since a tag, and the tag to ask with next time."""

    serials: list[str]
    tag: str


def authorized_pass(session: Session, channel: str, serial: str, token: str | None) -> WalletPass | None:
    """The pass with this serial if ``token`` is its authentication token (compared in constant time)."""
    row = session.exec(
        select(WalletPass).where(WalletPass.serial == serial, WalletPass.channel == channel)
    ).first()
    if row is None or token is None or not hmac.compare_digest(row.authentication_token, token):
        return None
    return row


def register(session: Session, row: WalletPass, device_id: str, push_token: str) -> bool:
    """Register a device for a pass; True when new (False: known, its push token refreshed)."""
    found = session.exec(
        select(PassRegistration).where(
            PassRegistration.device_id == device_id, PassRegistration.serial == row.serial
        )
    ).first()
    if found is not None:
        found.push_token = push_token
        session.add(found)
        return False
    session.add(PassRegistration(device_id=device_id, serial=row.serial, push_token=push_token))
    record(session, row, PassActivityKind.installed, detail={"device": device_id[:40]})
    return True


def unregister(session: Session, row: WalletPass, device_id: str) -> bool:
    """Forget a device's registration for a pass; True if there was one."""
    found = session.exec(
        select(PassRegistration).where(
            PassRegistration.device_id == device_id, PassRegistration.serial == row.serial
        )
    ).first()
    if found is None:
        return False
    session.delete(found)
    record(session, row, PassActivityKind.removed, detail={"device": device_id[:40]})
    return True


def drop_push_tokens(session: Session, serial_tokens: list[tuple[str, str]]) -> int:
    """Remove registrations whose push token the provider says is gone (the pass left the device)."""
    dropped = 0
    for serial, token in serial_tokens:
        rows = session.exec(
            select(PassRegistration).where(
                PassRegistration.serial == serial, PassRegistration.push_token == token
            )
        ).all()
        owner = session.exec(select(WalletPass).where(WalletPass.serial == serial)).first()
        for found in rows:
            session.delete(found)
            dropped += 1
            if owner is not None:
                record(
                    session,
                    owner,
                    PassActivityKind.removed,
                    detail={"device": found.device_id[:40], "why": "gone"},
                )
    return dropped


def updated_since(session: Session, channel: str, device_id: str, since: str | None) -> Updated:
    """The serials registered on this device whose pass changed after the tag ``since``."""
    query = (
        select(WalletPass.serial, WalletPass.updated_at)
        .join(PassRegistration, col(PassRegistration.serial) == col(WalletPass.serial))
        .where(PassRegistration.device_id == device_id, WalletPass.channel == channel)
    )
    moment = read_tag(since)
    if moment is not None:
        query = query.where(col(WalletPass.updated_at) > moment)
    found = list(session.exec(query))
    if not found:
        return Updated([], since or "")
    latest = max(as_utc(at) for _, at in found)
    return Updated(sorted(serial for serial, _ in found), make_tag(latest))


def log_messages(session: Session, channel: str, messages: list[str]) -> int:
    """Keep what devices report about problems with passes; how many were kept."""
    kept = [m[:2000] for m in messages[:MAX_LOG_MESSAGES] if isinstance(m, str)]
    session.add_all(DeviceLog(channel=channel, message=m) for m in kept)
    return len(kept)


def make_tag(moment: datetime) -> str:
    """The opaque update tag a device echoes back: the moment in microseconds since the epoch."""
    return str(int(as_utc(moment).timestamp() * 1_000_000))


def read_tag(tag: str | None) -> datetime | None:
    """The moment of a tag made by :func:`make_tag`; None for no tag or one that is not ours."""
    if not tag or not tag.isdigit() or len(tag) > 20:
        return None
    return datetime.fromtimestamp(int(tag) / 1_000_000, UTC)
