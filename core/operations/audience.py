"""Step 4: the segment's members now, and how many of them could get each chosen wallet's pass.

Reach is measured by rendering and checking the pass for a sample of members as issuing would
(nothing is issued); on a sample it is an estimate, said as such.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from sqlmodel import Session

from core.operations.models import PassOperation
from core.operations.service import WALLETS
from core.passes.design import PassDesign
from core.passes.models import PassTemplate
from core.passes.previews import problems_by_profile
from core.passes.wallets import WalletUnavailable, wallet_for
from core.plugin_api import Problem
from core.segments.service import TenantScope, check_rule, get_segment
from core.segments.sql import give_room, members_query
from core.tenancy.models import Tenant

log = logging.getLogger(__name__)
SAMPLE = 200


@dataclass
class WalletReach:
    """Of the members checked, how many could get this wallet's pass, and the commonest reasons not."""

    channel: str
    label: str
    template_name: str
    checked: int = 0
    reachable: int = 0
    estimated_total: int = 0
    reasons: list[tuple[str, int]] = field(default_factory=list)
    unavailable: str | None = None


@dataclass
class AudienceEstimate:
    """The segment's size and each wallet's reach (``estimate`` when only a sample was rendered)."""

    size: int
    estimate: bool
    wallets: list[WalletReach]


def members(session: Session, scope: TenantScope, segment_id: int) -> list[str]:
    """The ids of the segment's members now (its rule evaluated live, as a campaign does)."""
    segment = get_segment(session, segment_id)
    rule = check_rule(session, segment.rule, scope.conditions, segment.id)
    give_room(session)
    query = members_query(rule, session.get_bind().dialect.name, scope.clock)
    return [pid for (pid,) in session.connection().execute(query)]


def reason_of(problems: list[Problem]) -> str:
    """One failure's reason in words (the first problem: where, then what)."""
    first = problems[0]
    return f"{first.field}: {first.message}" if first.field else first.message


def estimate(
    session: Session, tenant: Tenant, scope: TenantScope, operation: PassOperation
) -> AudienceEstimate:
    """The audience of the operation's segment and, per chosen template, who could get its pass."""
    ids = members(session, scope, operation.segment_id) if operation.segment_id is not None else []
    sample = ids[:SAMPLE]
    found = AudienceEstimate(len(ids), len(ids) > len(sample), [])
    for channel, template_id in operation.template_ids().items():
        template = session.get(PassTemplate, template_id)
        reach = WalletReach(
            channel, WALLETS[channel], template.name if template else f"template {template_id}"
        )
        found.wallets.append(reach)
        if template is None:
            reach.unavailable = "The template was deleted."
            continue
        try:
            wallet = wallet_for(tenant, channel)
            design = PassDesign.model_validate(template.design)
            failing = problems_by_profile(session, wallet, design, sample, template.key)
        except WalletUnavailable as exc:
            reach.unavailable = str(exc)
            continue
        except Exception as exc:  # noqa: BLE001 - a failing plugin must not break the page
            log.exception("checking %s passes failed", channel)
            reach.unavailable = f"The wallet could not check its passes ({type(exc).__name__})."
            continue
        reach.checked, reach.reachable = len(sample), len(sample) - len(failing)
        reach.estimated_total = round(len(ids) * reach.reachable / len(sample)) if sample else 0
        reach.reasons = Counter(reason_of(list(p)) for p in failing.values()).most_common(5)
    return found
