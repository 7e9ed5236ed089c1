"""A branch step's condition, edited with the audience builder's rule tree and live preview.

The branch panel embeds the segment builder's templates (``segments/_builder.html`` and
``segments/_preview.html``) with their ``base`` pointed at the journey's ``/rule`` routes, which
re-render them as the segment pages do. The rule's inputs are part of the journey's form, so the
step's save reads them back with :func:`web.segment_builder.form.rule_from_form`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlmodel import Session

from core.segments.rules import Problem
from core.segments.service import TenantScope
from web.segment_builder.form import problems_by_node
from web.segment_builder.options import Options
from web.segment_builder.preview import evaluate
from web.segment_builder.tree import ROOT, normalize
from web.segment_builder.view import CONDITION_TYPES, flat, tree_view


def rule_problems(problems: Sequence[tuple[str, str]], key: str) -> list[Problem]:
    """The definition's problems about step ``key``'s rule, with paths inside the rule (``all[0].value``)."""
    prefix = f"steps.{key}.rule"
    found = []
    for path, message in problems:
        if path == prefix or path.startswith(prefix + "."):
            found.append(Problem(path[len(prefix) :].lstrip("."), message))
    return found


def condition_context(
    tenant_db: Session,
    scope: TenantScope,
    options: Options,
    rule: Any,
    base: str,
    extra_problems: Sequence[Problem] = (),
) -> dict[str, Any]:
    """What the embedded rule tree and its preview show (the segment builder's template variables)."""
    rule = normalize(rule)
    preview = evaluate(tenant_db, scope, rule, None)
    problems = problems_by_node([*preview.problems, *extra_problems])
    tree = tree_view(rule, ROOT, problems, options)
    nodes = flat(tree)
    placed = {node["path"] for node in nodes}
    return {"tree": tree, "nodes": nodes, "rule_json": json.dumps(rule), "preview": preview, "options": options,
            "unplaced": [m for path, found in problems.items() if path not in placed for m in found],
            "condition_types": CONDITION_TYPES, "plugin_types": scope.conditions, "base": base}  # fmt: skip
