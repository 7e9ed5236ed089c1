"""What a wallet plugin's device web service may do with one tenant's passes, through the plugin API.

Each call opens its own transaction on the tenant database and commits it: the web service's
handlers stay plain HTTP translation (status codes, headers) and never see a session.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from core.db.engines import control_session, tenant_engine
from core.passes import devices
from core.passes.activity import record
from core.passes.issuing import Issued, current, issue
from core.passes.models import PassActivityKind, PassState, PassTemplate, WalletPass
from core.passes.updates import notify
from core.passes.wallets import WalletUnavailable, wallet_for
from core.plugin_api import DeliveryResult, DeliveryStatus, OutboundMessage, PassFile
from core.tenancy.models import Tenant
from core.tenancy.tenants import get_tenant

# A hosted wallet does not say which phone holds a pass: one registration stands for "saved".
HOSTED = "wallet"


class Registration(enum.StrEnum):
    """How a register or unregister call went."""

    created = "created"
    exists = "exists"
    removed = "removed"
    unknown = "unknown"
    unauthorized = "unauthorized"


@dataclass(frozen=True)
class LatestPass:
    """The newest version of a pass, and when its content last changed."""

    file: PassFile
    last_modified: datetime


class PassRegistry:
    """One tenant's issued passes as one wallet channel's device web service sees them."""

    def __init__(self, tenant: str, channel: str):
        with control_session() as control:
            self._tenant: Tenant = get_tenant(control, tenant)
        self._channel = channel
        self._engine = tenant_engine(self._tenant.database)

    def _authorized(self, session: Session, serial: str, token: str | None) -> WalletPass | None:
        return devices.authorized_pass(session, self._channel, serial, token)

    def pass_type_identifier(self) -> str | None:
        """The identifier this tenant's passes carry on this channel, or None when it is not configured."""
        try:
            wallet = wallet_for(self._tenant, self._channel)
        except WalletUnavailable:
            return None
        return wallet.channel.pass_type_identifier(wallet.ctx)

    def register(self, serial: str, token: str | None, device_id: str, push_token: str) -> Registration:
        """Register a device for a pass if ``token`` is the pass's authentication token."""
        with Session(self._engine, expire_on_commit=False) as session:
            row = self._authorized(session, serial, token)
            if row is None:
                return Registration.unauthorized
            created = devices.register(session, row, device_id, push_token)
            session.commit()
        return Registration.created if created else Registration.exists

    def unregister(self, serial: str, token: str | None, device_id: str) -> Registration:
        """Forget a device's registration for a pass if ``token`` is the pass's authentication token."""
        with Session(self._engine, expire_on_commit=False) as session:
            row = self._authorized(session, serial, token)
            if row is None:
                return Registration.unauthorized
            removed = devices.unregister(session, row, device_id)
            session.commit()
        return Registration.removed if removed else Registration.unknown

    def saved(self, serial: str, saved: bool) -> Registration:
        """A hosted wallet reports that a customer saved this pass (or deleted it): installed or removed.

        Reports come again (providers retry): a pass already saved, or already gone, is left as it is.
        """
        with Session(self._engine, expire_on_commit=False) as session:
            row = session.exec(
                select(WalletPass).where(WalletPass.serial == serial, WalletPass.channel == self._channel)
            ).first()
            if row is None:
                return Registration.unknown
            if saved:
                outcome = (
                    Registration.created
                    if devices.register(session, row, HOSTED, "")
                    else Registration.exists
                )
            else:
                outcome = (
                    Registration.removed if devices.unregister(session, row, HOSTED) else Registration.unknown
                )
            session.commit()
        return outcome

    def updated_since(self, device_id: str, tag: str | None) -> devices.Updated:
        """The serials on this device whose pass changed after ``tag``, and the next tag."""
        with Session(self._engine) as session:
            return devices.updated_since(session, self._channel, device_id, tag)

    def latest(self, serial: str, token: str | None) -> LatestPass | None:
        """The current signed file of a pass (None for a wrong token or unknown serial).

        Raises :class:`WalletUnavailable` when the tenant's wallet cannot build it (not configured).
        """
        with Session(self._engine, expire_on_commit=False) as session:
            row = self._authorized(session, serial, token)
            if row is None:
                return None
            wallet = wallet_for(self._tenant, self._channel)
            rendered = current(session, wallet, row)
            if isinstance(rendered, list):
                raise WalletUnavailable("; ".join(f"{p.field}: {p.message}" for p in rendered))
            built = wallet.channel.build_pass(wallet.ctx, rendered)
            record(session, row, PassActivityKind.downloaded, detail={"by": "device"})
            session.commit()
        return LatestPass(built, rendered.updated_at)

    def deliver(self, messages: list[OutboundMessage]) -> list[DeliveryResult]:
        """Issue (or re-issue) the pass each message names for its profile: sending on a wallet channel.

        A message's template names the pass template by key (``pass_template``) and may put a
        notice on the pass (``notice``). The result's provider id is the pass serial; devices
        holding a pass that changed are told once the issue is committed.
        """
        results: list[DeliveryResult] = []
        changed: list[Issued] = []
        with Session(self._engine, expire_on_commit=False) as session:
            wallet = wallet_for(self._tenant, self._channel)
            by_key = {t.key: t for t in session.exec(select(PassTemplate)) if self._channel in t.wallets()}
            for message in messages:
                template = by_key.get(str(message.template.get("pass_template", "")))
                if template is None or template.archived:
                    results.append(_failed(message, "unknown_pass_template",
                                           f"There is no pass template {message.template.get('pass_template')!r}."))  # fmt: skip
                    continue
                notice = message.template.get("notice")
                if notice:
                    _put_notice(session, template, self._channel, message.profile.id, str(notice))
                outcome = issue(session, wallet, template, [message.profile.id],
                                delivery_ids={message.profile.id: int(message.delivery_id)})[message.profile.id]  # fmt: skip
                if isinstance(outcome, list):
                    detail = "; ".join(f"{p.field}: {p.message}" for p in outcome)
                    results.append(_failed(message, "invalid_pass", detail))
                    continue
                if outcome.changed or outcome.new:
                    changed.append(outcome)
                results.append(DeliveryResult(delivery_id=message.delivery_id, status=DeliveryStatus.sent,
                                              provider_id=outcome.wallet_pass.serial))  # fmt: skip
            session.commit()
        notify(self._tenant, changed)
        return results

    def log(self, messages: list[str]) -> int:
        """Keep what devices reported; how many messages were kept."""
        with Session(self._engine) as session:
            kept = devices.log_messages(session, self._channel, messages)
            session.commit()
        return kept


def _failed(message: OutboundMessage, code: str, detail: str) -> DeliveryResult:
    return DeliveryResult(delivery_id=message.delivery_id, status=DeliveryStatus.failed, reason_code=code,
                          detail=detail[:1000])  # fmt: skip


def _put_notice(session: Session, template: PassTemplate, channel: str, profile_id: str, notice: str) -> None:
    """Put the message's notice on the profile's live pass in this wallet, if it has one (a first pass
    starts without)."""
    row = session.exec(select(WalletPass).where(WalletPass.template_id == template.id, WalletPass.channel == channel,
                                                WalletPass.profile_id == profile_id)).first()  # fmt: skip
    if row is not None and row.state == PassState.active:
        row.notice = notice[:500]
        session.add(row)
