"""Messages put on passes ("notify on pass") and passes brought up to date ("update pass").

A wallet shows a lock-screen notification when a field with a change message changes, so a
notice is a back field whose change message is the notice itself: putting a new notice on a
pass re-issues it, and each device holding it shows the text. Both are used by journey steps
and run in the caller's transaction; the re-issue and the pushes follow in the refresh job.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from core.messages.personalization import MessageTemplate, MissingValue, TemplateInvalid, render
from core.passes.context import pass_contexts
from core.passes.marking import mark_changed
from core.passes.models import PassState, WalletPass

MAX_NOTICE = 500


def _live(session: Session, template_id: int | None, profile_ids: Sequence[str]) -> list[WalletPass]:
    query = select(WalletPass).where(
        col(WalletPass.profile_id).in_(list(profile_ids)), WalletPass.state == PassState.active
    )
    if template_id is not None:
        query = query.where(WalletPass.template_id == template_id)
    return list(session.exec(query))


def update_passes(
    session: Session, tenant_slug: str, template_id: int | None, profile_ids: Sequence[str]
) -> int:
    """Bring these profiles' live passes (of one template, or all) up to date; how many profiles hold one."""
    holders = {row.profile_id for row in _live(session, template_id, profile_ids)}
    mark_changed(session, tenant_slug, sorted(holders))
    return len(holders)


def put_notice(
    session: Session, tenant_slug: str, template_id: int | None, profile_ids: Sequence[str], text: str
) -> dict[str, str]:
    """Put a personalized notice on these profiles' live passes; per profile, what it says or why not.

    The text is personalization (``Hi {{ traits.first_name }}, ...``); a profile missing a value
    gets no notice (its entry says so) rather than a broken one.
    """
    rows = _live(session, template_id, profile_ids)
    template = MessageTemplate(variants={"default": {"notice": text}}, fallback="default")
    contexts = pass_contexts(session.connection(), sorted({r.profile_id for r in rows}))
    outcome: dict[str, str] = {}
    noticed: list[str] = []
    for row in rows:
        context = contexts.get(row.profile_id)
        if context is None:
            continue
        try:
            _, rendered = render(template, context, None)
        except (MissingValue, TemplateInvalid) as exc:
            outcome[row.profile_id] = f"not put: {exc}"
            continue
        row.notice = rendered["notice"].strip()[:MAX_NOTICE] or None
        session.add(row)
        noticed.append(row.profile_id)
        outcome[row.profile_id] = row.notice or ""
    mark_changed(session, tenant_slug, noticed)
    return outcome
