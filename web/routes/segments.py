"""Segments in the UI: the list, the no-code audience builder with its live preview, the detail page.

The builder's logic (the rule from the form, the edit actions, the view of the tree, the preview)
is in :mod:`web.segment_builder`; here are the pages and fragments that serve it. Every edit posts
the whole form to ``/builder``, which re-renders the builder and the preview; typing in a text
input posts to ``/preview``, which refreshes only the preview.

Seeing segments and previewing needs ``read_data``; saving and archiving ``write_marketing``
(recorded in the audit log as ``segment.create``, ``segment.update``, ``segment.archive``; the
CSV export as ``segment.export``).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from sqlmodel import Session
from starlette.datastructures import FormData

from core.audit import service as audit
from core.db.engines import tenant_session
from core.queue.outbox import add_job
from core.segments import service
from core.segments.jobs import REFRESH_SEGMENTS
from core.segments.models import Segment
from core.segments.rules import Problem, RuleError
from core.segments.service import SegmentConflict, SegmentNotFound, TenantScope, tenant_scope
from core.tenancy.roles import Permission
from web.auth import ControlDB, Principal, client_info, require
from web.csrf import verify_csrf
from web.routes.pages import page_context
from web.segment_builder.form import problems_by_node, rule_from_form
from web.segment_builder.options import Options, load_options
from web.segment_builder.preview import evaluate
from web.segment_builder.tree import ROOT, apply_action, normalize
from web.segment_builder.values import Fields
from web.segment_builder.view import CONDITION_TYPES, flat, tree_view
from web.segment_builder.words import describe
from web.templating import render

router = APIRouter(prefix="/t/{tenant}/segments", dependencies=[Depends(verify_csrf)])
Reader = Annotated[Principal, Depends(require(Permission.read_data))]
Marketer = Annotated[Principal, Depends(require(Permission.write_marketing))]

MEMBERS_PAGE = 50
CSV_COLUMNS = ["profile_id", "name", "email", "phone", "entered_at"]


def _base(principal: Principal) -> str:
    return f"/t/{principal.tenant.slug}/segments"


def _builder_context(
    request: Request,
    session: Session,
    principal: Principal,
    rule: Any,
    segment: Segment | None,
    *,
    name: str | None = None,
    description: str | None = None,
    save_error: str | None = None,
    extra_problems: Sequence[Problem] = (),
    scope: TenantScope | None = None,
    options: Options | None = None,
) -> dict[str, Any]:
    """What the builder's templates show: the tree with its problems, the preview, the choices."""
    scope = scope or tenant_scope(session, principal.tenant)
    self_id = segment.id if segment else None
    rule = normalize(rule)
    with tenant_session(principal.tenant.database) as tenant_db:
        options = options or load_options(tenant_db, scope, self_id)
        preview = evaluate(tenant_db, scope, rule, self_id)
    problems = problems_by_node([*preview.problems, *extra_problems])
    tree = tree_view(rule, ROOT, problems, options)
    nodes = flat(tree)
    placed = {node["path"] for node in nodes}
    base = _base(principal)
    return page_context(
        request, session, principal, section="segments", segment=segment, tree=tree,
        rule_json=json.dumps(rule), preview=preview, options=options, nodes=nodes, base=base,
        unplaced=[m for path, found in problems.items() if path not in placed for m in found],
        save_url=f"{base}/{segment.id}/edit" if segment else f"{base}/new", save_error=save_error,
        name=name if name is not None else (segment.name if segment else ""),
        description=description if description is not None else (segment.description if segment else ""),
        plugin_types=scope.conditions, condition_types=CONDITION_TYPES,
    )  # fmt: skip


@router.get("", include_in_schema=False)
def segments_page(request: Request, session: ControlDB, principal: Reader, archived: str = "") -> Response:
    """Every active segment: its size when last counted, and who changed it when."""
    with tenant_session(principal.tenant.database) as tenant_db:
        segments = service.active_segments(tenant_db)
    context = page_context(request, session, principal, section="segments", segments=segments,
                           archived=archived, base=_base(principal))  # fmt: skip
    return render(request, "segments/list.html", context)


@router.get("/new", include_in_schema=False)
def new_segment_page(request: Request, session: ControlDB, principal: Reader) -> Response:
    """The builder for a new segment (read-only for roles that may not save)."""
    context = _builder_context(request, session, principal, {"all": []}, None)
    return render(request, "segments/builder.html", context)


@router.get("/{segment_id:int}/edit", include_in_schema=False)
def edit_segment_page(request: Request, segment_id: int, session: ControlDB, principal: Reader) -> Response:
    """The builder for an existing segment."""
    segment = _segment_or_404(principal, segment_id)
    context = _builder_context(request, session, principal, segment.rule, segment)
    return render(request, "segments/builder.html", context)


def _segment_id(f: Fields) -> int | None:
    raw = f.text("segment_id")
    return int(raw) if raw.isdigit() else None


def _rebuild(request: Request, session: Session, principal: Principal, form: FormData) -> Response:
    f = Fields(form)
    scope = tenant_scope(session, principal.tenant)
    rule = rule_from_form(form, scope.conditions)
    self_id = _segment_id(f)
    with tenant_session(principal.tenant.database) as tenant_db:
        options = load_options(tenant_db, scope, self_id)
        segment = tenant_db.get(Segment, self_id) if self_id else None
    action = f.text("action")
    if action:
        rule = apply_action(rule, action, options)
    context = _builder_context(request, session, principal, rule, segment, name=f.text("name"),
                               description=f.text("description"), scope=scope, options=options)  # fmt: skip
    return render(request, "segments/_builder_response.html", context)


@router.post("/builder", include_in_schema=False)
async def builder(request: Request, session: ControlDB, principal: Reader) -> Response:
    """Apply one edit (the ``action`` field, or the inputs alone) and re-render the builder and preview."""
    form = await request.form()
    return await run_in_threadpool(_rebuild, request, session, principal, form)


def _preview(request: Request, session: Session, principal: Principal, form: FormData) -> Response:
    scope = tenant_scope(session, principal.tenant)
    rule = rule_from_form(form, scope.conditions)
    self_id = _segment_id(Fields(form))
    with tenant_session(principal.tenant.database) as tenant_db:
        segment = tenant_db.get(Segment, self_id) if self_id else None
    context = _builder_context(request, session, principal, rule, segment, scope=scope)
    return render(request, "segments/_preview_response.html", context)


@router.post("/preview", include_in_schema=False)
async def preview(request: Request, session: ControlDB, principal: Reader) -> Response:
    """The live preview of the rule the form holds, and the problems next to its conditions."""
    form = await request.form()
    return await run_in_threadpool(_preview, request, session, principal, form)


def _save(
    request: Request, session: Session, principal: Principal, form: FormData, segment_id: int | None
) -> Response:
    f = Fields(form)
    scope = tenant_scope(session, principal.tenant)
    rule = rule_from_form(form, scope.conditions)
    name, description = f.text("name"), f.text("description")
    with tenant_session(principal.tenant.database) as tenant_db:
        try:
            if segment_id is None:
                saved = service.create_segment(tenant_db, name, rule, principal.actor, scope.conditions,
                                               description)  # fmt: skip
            else:
                saved = service.update_segment(tenant_db, segment_id, principal.actor, scope.conditions,
                                               name=name, rule=rule, description=description)  # fmt: skip
        except SegmentNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except (RuleError, SegmentConflict) as exc:
            tenant_db.rollback()
            current = tenant_db.get(Segment, segment_id) if segment_id else None
            return _not_saved(request, session, principal, rule, current, name, description, exc)
        add_job(tenant_db, principal.tenant.slug, REFRESH_SEGMENTS, {"segment_id": saved.id})
        tenant_db.commit()
    audit.record(session, actor=principal.actor, tenant_id=principal.tenant.id, target=f"segment {saved.id}",
                 action="segment.create" if segment_id is None else "segment.update",
                 detail={"name": saved.name}, **client_info(request))  # fmt: skip
    session.commit()
    url = f"{_base(principal)}/{saved.id}"
    if request.headers.get("hx-request"):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _not_saved(
    request: Request,
    session: Session,
    principal: Principal,
    rule: Any,
    segment: Segment | None,
    name: str,
    description: str,
    exc: RuleError | SegmentConflict,
) -> Response:
    if isinstance(exc, SegmentConflict):
        message, problems = f"Not saved: {exc}", []
    else:
        naming = [p.message for p in exc.problems if p.path == "name"]
        problems = [p for p in exc.problems if p.path != "name"]
        message = (
            f"Not saved: the name: {naming[0]}." if naming else "Not saved: fix the problems marked below."
        )
    context = _builder_context(request, session, principal, rule, segment, name=name, description=description,
                               save_error=message, extra_problems=problems)  # fmt: skip
    template = (
        "segments/_builder_response.html" if request.headers.get("hx-request") else "segments/builder.html"
    )
    return render(request, template, context, status_code=422)


@router.post("/new", include_in_schema=False)
async def create_segment(request: Request, session: ControlDB, principal: Marketer) -> Response:
    """Save a new segment, queue its first evaluation, audit it, and show it."""
    form = await request.form()
    return await run_in_threadpool(_save, request, session, principal, form, None)


@router.post("/{segment_id:int}/edit", include_in_schema=False)
async def update_segment(
    request: Request, segment_id: int, session: ControlDB, principal: Marketer
) -> Response:
    """Save changes to a segment, queue its re-evaluation, audit it, and show it."""
    form = await request.form()
    return await run_in_threadpool(_save, request, session, principal, form, segment_id)


def _get_or_404(tenant_db: Session, segment_id: int) -> Segment:
    try:
        return service.get_segment(tenant_db, segment_id)
    except SegmentNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


def _segment_or_404(principal: Principal, segment_id: int) -> Segment:
    with tenant_session(principal.tenant.database) as tenant_db:
        return _get_or_404(tenant_db, segment_id)


def chart(history: Sequence[tuple[date, int]], width: int = 640, height: int = 120) -> dict[str, Any] | None:
    """Bars of the size per day, scaled to ``width`` x ``height`` (None without history)."""
    if not history:
        return None
    top = max(size for _, size in history) or 1
    step = width / len(history)
    bars = []
    for i, (day, size) in enumerate(history):
        tall = max(size / top * height, 1.0)
        bars.append({"x": round(i * step + step * 0.1, 1), "y": round(height - tall, 1),
                     "w": round(max(step * 0.8, 1.0), 1), "h": round(tall, 1), "title": f"{day}: {size:,}"})  # fmt: skip
    return {"width": width, "height": height, "bars": bars, "top": top, "first": history[0][0],
            "last": history[-1][0], "latest": history[-1][1]}  # fmt: skip


def _stale(segment: Segment) -> bool:
    """Whether the last count is older than the last change (a re-evaluation is due)."""
    if segment.counted_at is None:
        return True
    counted, updated = (t.replace(tzinfo=None) for t in (segment.counted_at, segment.updated_at))
    return counted < updated


def _members_context(tenant_db: Session, segment: Segment, after: str) -> dict[str, Any]:
    assert segment.id is not None
    rows, cursor = service.members(tenant_db, segment.id, after or None, MEMBERS_PAGE)
    return {"members": rows, "cursor": cursor, "after": after}


def _detail(
    request: Request,
    session: Session,
    principal: Principal,
    segment_id: int,
    after: str = "",
    error: str | None = None,
    status: int = 200,
) -> Response:
    scope = tenant_scope(session, principal.tenant)
    with tenant_session(principal.tenant.database) as tenant_db:
        segment = _get_or_404(tenant_db, segment_id)
        options = load_options(tenant_db, scope, segment_id)
        live = evaluate(tenant_db, scope, segment.rule, segment_id)
        history = service.size_history(tenant_db, segment_id)
        members = _members_context(tenant_db, segment, after)
        users = service.referrers(tenant_db, segment_id)
    context = page_context(
        request, session, principal, section="segments", segment=segment, base=_base(principal),
        words=describe(normalize(segment.rule), options), preview=live, chart=chart(history),
        stale=_stale(segment), error=error, used_by=users, **members,
    )  # fmt: skip
    return render(request, "segments/detail.html", context, status_code=status)


@router.get("/{segment_id:int}", include_in_schema=False)
def segment_page(
    request: Request, segment_id: int, session: ControlDB, principal: Reader, after: str = ""
) -> Response:
    """One segment: its rule in words, size over time, a sample, reach per channel, its members."""
    return _detail(request, session, principal, segment_id, after)


@router.get("/{segment_id:int}/size", include_in_schema=False)
def size_fragment(request: Request, segment_id: int, principal: Reader) -> Response:
    """The size and when it was counted (polled while an evaluation is due)."""
    segment = _segment_or_404(principal, segment_id)
    with tenant_session(principal.tenant.database) as tenant_db:
        history = service.size_history(tenant_db, segment_id)
    stale = _stale(segment)
    context = {"principal": principal, "segment": segment, "stale": stale, "base": _base(principal),
               "chart": chart(history)}  # fmt: skip
    response = render(request, "segments/_size.html", context)
    if not stale:
        response.headers["HX-Trigger"] = "segment-counted"  # the member list reloads itself
    return response


@router.get("/{segment_id:int}/members", include_in_schema=False)
def members_fragment(request: Request, segment_id: int, principal: Reader, after: str = "") -> Response:
    """One page of current members (after the cursor ``after``)."""
    with tenant_session(principal.tenant.database) as tenant_db:
        segment = _get_or_404(tenant_db, segment_id)
        context = {"principal": principal, "segment": segment, "base": _base(principal),
                   **_members_context(tenant_db, segment, after)}  # fmt: skip
    return render(request, "segments/_members.html", context)


@router.post("/{segment_id:int}/archive", include_in_schema=False)
def archive_segment(request: Request, segment_id: int, session: ControlDB, principal: Marketer) -> Response:
    """Archive a segment (refused while other segments use it); its members exit."""
    with tenant_session(principal.tenant.database) as tenant_db:
        try:
            segment = service.archive_segment(tenant_db, segment_id, principal.actor)
        except SegmentNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except SegmentConflict as exc:
            tenant_db.rollback()
            return _detail(request, session, principal, segment_id, error=f"Not archived: {exc}", status=409)
        name = segment.name
        tenant_db.commit()
    audit.record(session, actor=principal.actor, action="segment.archive", tenant_id=principal.tenant.id,
                 target=f"segment {segment_id}", detail={"name": name}, **client_info(request))  # fmt: skip
    session.commit()
    return RedirectResponse(f"{_base(principal)}?archived={quote(name)}", status_code=303)


def csv_lines(database: str, segment_id: int) -> Iterator[str]:
    """The members as CSV (profile_id, name, email, phone, entered_at), in chunks."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    with tenant_session(database) as tenant_db:
        for row in service.export_rows(tenant_db, segment_id):
            writer.writerow(row)
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


@router.get("/{segment_id:int}/export.csv", include_in_schema=False)
def export_csv(request: Request, segment_id: int, session: ControlDB, principal: Reader) -> Response:
    """Every current member with their email and phone, as a CSV download (audited)."""
    segment = _segment_or_404(principal, segment_id)
    audit.record(session, actor=principal.actor, action="segment.export", tenant_id=principal.tenant.id,
                 target=f"segment {segment_id}", detail={"name": segment.name}, **client_info(request))  # fmt: skip
    session.commit()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", segment.name).strip("-")[:80] or f"segment-{segment_id}"
    return StreamingResponse(csv_lines(principal.tenant.database, segment_id), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{stem}.csv"'})  # fmt: skip
