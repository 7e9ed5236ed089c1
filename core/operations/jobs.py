"""The launch job of a pass operation: issue the passes to the segment in chunks, then start the campaigns.

Each chunk is issued and committed on its own, then its wallets are told (``notify``), so a large
segment never holds one long transaction. The failures are counted by reason. Then one one-shot
campaign per chosen message channel carries the add-to-wallet link (``{{ wallet.<template key> }}``).
Re-running the job is harmless: issuing again keeps each pass, and campaigns already made are kept.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from sqlmodel import Session, select

from core.campaigns.models import Campaign
from core.campaigns.service import CampaignIn, CampaignRefused, create_campaign
from core.campaigns.service import launch as launch_campaign
from core.db.base import utcnow
from core.db.engines import control_session, tenant_engine
from core.messages.personalization import MessageTemplate, TemplateInvalid
from core.operations.audience import members, reason_of
from core.operations.models import OperationState, PassOperation
from core.operations.service import WALLETS
from core.passes.issuing import Issued, issue
from core.passes.models import PassTemplate
from core.passes.updates import notify
from core.passes.wallets import WalletUnavailable, wallet_for
from core.plugin_api import Channel
from core.segments.service import TenantScope, tenant_scope
from core.tenancy.models import Tenant
from core.tenancy.tenants import get_tenant

log = logging.getLogger(__name__)
CHUNK = 200


def launch_operation(tenant_slug: str, payload: dict[str, Any]) -> None:
    """Job ``core.operations.launch``: issue operation ``payload["operation_id"]``'s passes, then its campaigns."""
    with control_session() as control:
        tenant = get_tenant(control, tenant_slug)
        scope = tenant_scope(control, tenant)
    engine = tenant_engine(tenant.database)
    with Session(engine, expire_on_commit=False) as session:
        operation = session.get(PassOperation, int(payload["operation_id"]))
        if operation is None or operation.state != OperationState.launching or operation.segment_id is None:
            return
        audience = members(session, scope, operation.segment_id)
        templates = {
            channel: session.get(PassTemplate, tid) for channel, tid in operation.template_ids().items()
        }
    counts: dict[str, Any] = {"targeted": len(audience), "failures": {}}
    failures: Counter[str] = Counter()
    for channel, template in templates.items():
        counts[channel] = _issue_all(tenant, engine, channel, template, audience, failures)
    counts["failures"] = dict(failures.most_common())
    with Session(engine, expire_on_commit=False) as session:
        operation = session.get(PassOperation, int(payload["operation_id"]))
        assert operation is not None
        counts["campaigns"] = operation.counts.get("campaigns") or _campaigns(
            session, tenant, scope, operation
        )
        operation.counts, operation.state = counts, OperationState.launched
        operation.updated_at = utcnow()
        session.add(operation)
        session.commit()
    log.info("pass operation %s/%s launched: %s", tenant_slug, payload["operation_id"], counts)


def _issue_all(
    tenant: Tenant, engine: Any, channel: str, template: PassTemplate | None, audience: list[str],
    failures: Counter[str],
) -> dict[str, int]:  # fmt: skip
    """Issue one template's pass to the audience chunk by chunk; how many were issued, new and failed."""
    tally = {"issued": 0, "new": 0, "failed": 0}
    label = WALLETS[channel]
    if template is None:
        tally["failed"] = len(audience)
        failures[f"{label}: the template was deleted"] += len(audience)
        return tally
    try:
        wallet = wallet_for(tenant, channel)
    except WalletUnavailable as exc:
        tally["failed"] = len(audience)
        failures[f"{label}: {exc}"] += len(audience)
        return tally
    for start in range(0, len(audience), CHUNK):
        chunk = audience[start : start + CHUNK]
        with Session(engine, expire_on_commit=False) as session:
            outcomes = issue(session, wallet, template, chunk)
            session.commit()
        issued = [outcome for outcome in outcomes.values() if isinstance(outcome, Issued)]
        for outcome in outcomes.values():
            if not isinstance(outcome, Issued):
                failures[f"{label}: {reason_of(list(outcome))}"] += 1
        tally["issued"] += len(issued)
        tally["new"] += sum(1 for outcome in issued if outcome.new)
        tally["failed"] += len(chunk) - len(issued)
        notify(tenant, [outcome for outcome in issued if outcome.new or outcome.changed])
    return tally


def message_content(channel: Channel, operation: PassOperation, keys: dict[str, str]) -> dict[str, Any]:
    """A message for ``channel`` carrying each chosen wallet's add-to-wallet link."""
    links = " ".join(f"{WALLETS[wallet]}: {{{{ wallet.{key} }}}}" for wallet, key in keys.items())
    body = f"Add your {operation.name} pass to your wallet. {links}"
    fields = channel.Template.model_fields
    texts: dict[str, str] = {}
    for name, info in fields.items():
        if name in ("body", "text", "message"):
            texts[name] = body
        elif info.is_required():
            texts[name] = operation.name
    if not any(body in text for text in texts.values()):
        first = next(iter(texts), "body")
        texts[first] = body
    return MessageTemplate(variants={"en": texts}, fallback="en").model_dump()


def _campaigns(
    session: Session, tenant: Tenant, scope: TenantScope, operation: PassOperation
) -> list[dict[str, Any]]:
    """One launched campaign per chosen channel (or why it could not be made)."""
    keys = {}
    for wallet, template_id in operation.template_ids().items():
        template = session.get(PassTemplate, template_id)
        if template is not None:
            keys[wallet] = template.key
    made: list[dict[str, Any]] = []
    for key in operation.distribution.get("channels", []):
        channel = scope.channels.get(key)
        if channel is None or operation.segment_id is None:
            made.append({"channel": key, "error": "the channel is not enabled any more"})
            continue
        name = f"{operation.name} — {channel.label}"[:200]
        earlier = session.exec(select(Campaign).where(Campaign.name == name)).first()
        if earlier is not None:  # made by an earlier attempt of this job, which died before it finished
            made.append({"channel": key, "campaign_id": earlier.id})
            continue
        data = CampaignIn(name=name, segment_id=operation.segment_id, channel=key,
                          content=message_content(channel, operation, keys))  # fmt: skip
        try:
            campaign = create_campaign(
                session, tenant, scope, data, operation.launched_by or "pass operation"
            )
            launch_campaign(session, tenant, scope, campaign, operation.launched_by or "pass operation",
                            skip_missing=True)  # fmt: skip
        except (CampaignRefused, TemplateInvalid) as exc:
            session.rollback()
            made.append({"channel": key, "error": str(exc)})
            continue
        session.commit()  # each campaign on its own: a later refusal must not undo it
        made.append({"channel": key, "campaign_id": campaign.id})
    return made
