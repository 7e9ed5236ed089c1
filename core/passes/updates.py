"""Keeping issued passes live: re-issue when a bound value changes, tell devices, void, expire.

Whatever may change what a pass shows (a purchase moving the points balance, a tier change, a
trait, an offer) marks the profile in ``pass_refresh`` in the writer's transaction and ensures
one ``core.passes.refresh`` job; the job re-renders those profiles' passes and, for each pass
that now shows something else, asks its wallet to notify the devices it is installed on (Apple:
an empty APNs push; the device then fetches the new pass and shows the field's change message).
Devices the provider calls gone lose their registration.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.db.base import utcnow
from core.db.engines import control_session, tenant_engine
from core.passes.activity import record
from core.passes.devices import drop_push_tokens
from core.passes.issuing import Issued, current, issue, next_version_time
from core.passes.marking import PASS_REFRESH, REFRESH
from core.passes.models import PassActivityKind, PassRegistration, PassState, PassTemplate, WalletPass
from core.passes.wallets import Wallet, WalletUnavailable, wallet_for
from core.plugin_api import DeliveryError, PassUpdate
from core.queue.outbox import release_coalesced
from core.tenancy.models import Tenant
from core.tenancy.tenants import get_tenant

log = logging.getLogger(__name__)
EXPIRE = "core.passes.expire"
EXPIRE_EVERY = timedelta(hours=1)
CHUNK = 500


def refresh_passes(tenant_slug: str, payload: dict[str, Any]) -> None:
    """Job ``core.passes.refresh``: re-issue the marked profiles' passes, then notify their devices."""
    with control_session() as control:
        tenant = get_tenant(control, tenant_slug)
    engine = tenant_engine(tenant.database)
    while True:
        with Session(engine, expire_on_commit=False) as session:
            marks = [tuple(row) for row in session.connection().execute(
                sa.select(PASS_REFRESH.c.profile_id, PASS_REFRESH.c.marked_at)
                .order_by(PASS_REFRESH.c.marked_at).limit(CHUNK))]  # fmt: skip
            marked = [pid for pid, _ in marks]
            changed = reissue_profiles(session, tenant, marked) if marked else []
            if marks:
                # Only the marks as read: a writer that marked a profile again meanwhile (points
                # posted while its pass was rendered from the balance before) set a later time,
                # and that mark stays for the next round. Deleting it would lose the change: the
                # writer found this job running, so it queued no other.
                key = sa.tuple_(PASS_REFRESH.c.profile_id, PASS_REFRESH.c.marked_at)
                session.connection().execute(PASS_REFRESH.delete().where(key.in_(marks)))
            more = len(marked) == CHUNK or release_coalesced(session, REFRESH, _has_marked(session))
            session.commit()
        notify(tenant, changed)
        if not more:
            return


def _has_marked(session: Session) -> Any:
    def more() -> bool:
        return session.connection().execute(sa.select(PASS_REFRESH.c.profile_id).limit(1)).first() is not None

    return more


def reissue_profiles(session: Session, tenant: Tenant, profile_ids: list[str]) -> list[Issued]:
    """Re-render the live passes of these profiles; the passes whose content changed."""
    rows = session.exec(
        select(WalletPass).where(
            col(WalletPass.profile_id).in_(profile_ids), WalletPass.state == PassState.active
        )
    ).all()
    by_template: defaultdict[tuple[int, str], list[str]] = defaultdict(list)
    for row in rows:
        by_template[(row.template_id, row.channel)].append(row.profile_id)
    changed: list[Issued] = []
    for (template_id, channel), holders in by_template.items():
        reissued = reissue(session, tenant, template_id, holders, channel)
        changed += [issued for issued in reissued if issued.changed]
    return changed


def reissue(
    session: Session, tenant: Tenant, template_id: int, profile_ids: list[str], channel: str | None = None
) -> list[Issued]:
    """Re-render one template's passes in one wallet (by default its own) for these profiles; what was
    issued (problems are logged)."""
    template = session.get(PassTemplate, template_id)
    if template is None:
        return []
    channel = channel or template.channel
    try:
        wallet = wallet_for(tenant, channel)
    except WalletUnavailable as exc:
        log.warning("passes of template %s not refreshed: %s", template_id, exc)
        return []
    issued = []
    for profile_id, outcome in issue(session, wallet, template, profile_ids).items():
        if isinstance(outcome, list):
            # The previous pass stays on the phone; the problem shows in the template's report.
            log.warning("pass of %s (template %s) not re-issued: %s", profile_id, template_id, outcome)
            row = session.exec(select(WalletPass).where(WalletPass.template_id == template_id,
                                                        WalletPass.channel == channel,
                                                        WalletPass.profile_id == profile_id)).first()  # fmt: skip
            if row is not None:
                record(
                    session,
                    row,
                    PassActivityKind.failed,
                    detail={"problems": [p.message for p in outcome][:5]},
                )
        else:
            issued.append(outcome)
    return issued


def notify(tenant: Tenant, passes: Iterable[WalletPass | Issued]) -> int:
    """Carry new, changed, voided or expired passes to their wallets, after the issuer committed.

    Device wallets (Apple): the devices holding a changed pass are told to fetch it. Hosted
    wallets (Google): the pass is created or updated at the provider, with its announcements.
    Returns how many pushes or updates went out.
    """
    by_channel: defaultdict[str, list[WalletPass | Issued]] = defaultdict(list)
    for item in passes:
        by_channel[_row(item).channel].append(item)
    if not by_channel:
        return 0
    sent = 0
    engine = tenant_engine(tenant.database)
    for channel_key, items in by_channel.items():
        try:
            wallet = wallet_for(tenant, channel_key)
        except WalletUnavailable as exc:
            log.warning("pass changes not carried to the wallet: %s", exc)
            continue
        with Session(engine, expire_on_commit=False) as session:
            if wallet.channel.hosted:
                sent += _publish(session, wallet, items)
            else:
                sent += _push(session, wallet, [_row(item) for item in items])
            session.commit()
    return sent


def _row(item: WalletPass | Issued) -> WalletPass:
    return item.wallet_pass if isinstance(item, Issued) else item


def _publish(session: Session, wallet: Wallet, items: list[WalletPass | Issued]) -> int:
    """Put passes at a hosted wallet; each is recorded as pushed (and notified) or failed."""
    updates: list[PassUpdate] = []
    rows: dict[str, WalletPass] = {}
    for item in items:
        row = _row(item)
        if isinstance(item, Issued):
            rendered, new, announced = item.rendered, item.new, item.announced
        else:  # voided, expired or merged: what it shows now
            outcome = current(session, wallet, row)
            if isinstance(outcome, list):
                record(
                    session,
                    row,
                    PassActivityKind.failed,
                    detail={"problems": [p.message for p in outcome][:5]},
                )
                continue
            rendered, new, announced = outcome, False, []
        texts = tuple(
            f.change_message.replace("%@", f.value)
            for f in rendered.fields
            if f.key in announced and f.change_message
        )
        updates.append(PassUpdate(rendered=rendered, new=new, announcements=texts))
        rows[row.serial] = row
    if not updates:
        return 0
    try:
        failed = wallet.channel.publish_passes(wallet.ctx, updates)
    except DeliveryError as exc:
        log.warning("publishing passes failed (%s): %s", exc.reason_code, exc)
        failed = dict.fromkeys(rows, f"{exc.reason_code}: {exc}")
    for update in updates:
        row = rows[update.rendered.serial]
        if update.rendered.serial in failed:
            record(session, row, PassActivityKind.failed, detail={"publish": failed[row.serial][:300]})
            continue
        record(session, row, PassActivityKind.pushed, detail={"published": True})
        if update.announcements:
            record(session, row, PassActivityKind.notified, detail={"texts": list(update.announcements)})
    return len(updates) - len(failed)


def _push(session: Session, wallet: Wallet, rows: list[WalletPass]) -> int:
    serials = {row.serial: row for row in rows}
    devices = session.exec(
        select(PassRegistration).where(col(PassRegistration.serial).in_(list(serials)))
    ).all()
    token_serials: defaultdict[str, list[str]] = defaultdict(list)
    for device in devices:
        token_serials[device.push_token].append(device.serial)
    if not token_serials:
        return 0
    try:
        gone = set(wallet.channel.notify_devices(wallet.ctx, sorted(token_serials)))
    except DeliveryError as exc:
        log.warning("pushing pass updates failed (%s): %s", exc.reason_code, exc)
        for row in rows:
            record(
                session,
                row,
                PassActivityKind.failed,
                detail={"push": exc.reason_code, "detail": str(exc)[:300]},
            )
        drop_push_tokens(
            session, [(serial, token) for token in exc.gone for serial in token_serials.get(token, [])]
        )
        return 0
    drop_push_tokens(session, [(serial, token) for token in gone for serial in token_serials[token]])
    pushed: defaultdict[str, int] = defaultdict(int)
    for token, held in token_serials.items():
        if token not in gone:
            for serial in held:
                pushed[serial] += 1
    for serial, count in pushed.items():
        record(session, serials[serial], PassActivityKind.pushed, detail={"devices": count})
    return sum(pushed.values())


def void(session: Session, tenant: Tenant, row: WalletPass, reason: str, by: str) -> WalletPass:
    """Revoke a pass: it shows as void in the wallet (after the caller commits and :func:`notify`)."""
    return _end(session, tenant, row, PassState.voided, {"reason": reason[:300], "by": by})


def _end(
    session: Session, tenant: Tenant, row: WalletPass, state: PassState, detail: dict[str, Any]
) -> WalletPass:
    if row.state != PassState.active:
        return row
    now = utcnow()
    row.state, row.voided_at = state, now
    template = session.get(PassTemplate, row.template_id)
    try:
        wallet = wallet_for(tenant, row.channel)
    except WalletUnavailable:
        wallet = None
    if template is not None and wallet is not None:
        issue(session, wallet, template, [row.profile_id], now=now)
    else:  # the state is kept, and the file shows void whenever it is next built
        row.updated_at = next_version_time(row.updated_at, now)
    session.add(row)
    kind = PassActivityKind.voided if state == PassState.voided else PassActivityKind.expired
    record(session, row, kind, now, detail)
    return row


def expire_passes(tenant_slug: str, payload: dict[str, Any]) -> None:
    """Job ``core.passes.expire`` (hourly): passes past their expiration date become expired and are pushed."""
    with control_session() as control:
        tenant = get_tenant(control, tenant_slug)
    with Session(tenant_engine(tenant.database), expire_on_commit=False) as session:
        ended = expired_now(session, tenant, utcnow())
        session.commit()
    notify(tenant, ended)


def expired_now(session: Session, tenant: Tenant, now: datetime) -> list[WalletPass]:
    """Mark the live passes whose rendered expiration date has passed as expired; those passes."""
    templates = [t for t in session.exec(select(PassTemplate)) if t.design.get("expiration_date")]
    ended: list[WalletPass] = []
    for template, channel in ((t, c) for t in templates for c in t.wallets()):
        try:
            wallet = wallet_for(tenant, channel)
        except WalletUnavailable:
            continue
        rows = session.exec(select(WalletPass).where(WalletPass.template_id == template.id,
                                                     WalletPass.channel == channel,
                                                     WalletPass.state == PassState.active)).all()  # fmt: skip
        for start in range(0, len(rows), CHUNK):
            part = rows[start : start + CHUNK]
            outcomes = issue(session, wallet, template, [r.profile_id for r in part])
            for row in part:
                outcome = outcomes.get(row.profile_id)
                if isinstance(outcome, Issued) and outcome.rendered.expiration_date is not None:
                    if outcome.rendered.expiration_date <= now:
                        ended.append(_end(session, tenant, row, PassState.expired, {"at": now.isoformat()}))
    return ended
