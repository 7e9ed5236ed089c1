"""What the earning-rule editor shows: its inputs, the profile condition's rule tree, the URLs."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from core.loyalty.models import EarningRule, LoyaltyProgram
from core.segments.service import TenantScope
from web.campaign_pages.form import Problems
from web.journey_builder.condition import condition_context
from web.loyalty_pages.rule_form import KINDS, RuleForm, filters_view
from web.segment_builder.options import Options


def fields_view(
    program: LoyaltyProgram, form: RuleForm, problems: Problems, options: Options, rules_url: str
) -> dict[str, Any]:
    """The variables of the rule's own inputs (``loyalty/_rule_fields.html``)."""
    return {"program": program, "form": form, "problems": problems, "filters": filters_view(form), "kinds": KINDS,
            "event_names": options.event_names, "rules_url": rules_url}  # fmt: skip


def editor_view(
    tenant_db: Session,
    scope: TenantScope,
    options: Options,
    program: LoyaltyProgram,
    rule: EarningRule | None,
    form: RuleForm,
    problems: Problems,
    rules_url: str,
) -> dict[str, Any]:
    """Every variable of the editor's page: the rule's inputs, its profile condition, where it saves."""
    condition = condition_context(tenant_db, scope, options, form.profile_rule, f"{rules_url}/condition")
    return {
        **condition, **fields_view(program, form, problems, options, rules_url), "rule": rule,
        "save_url": f"{rules_url}/{rule.id}" if rule else f"{rules_url}/new",
    }  # fmt: skip
