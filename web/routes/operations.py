"""Pass operations in the Wallet section: the list, the seven guided steps, the launch and the report.

Each step is a page with Back/Next and a step indicator; its form posts with htmx and comes back
with its problems in words (422), or moves on to the next step. Step 4 redraws the audience's size
and reach as the segment changes (``/audience``); step 6 redraws the previews for another profile
or language (``/preview``). Seeing the list and the report needs ``read_data``; everything else
``write_marketing``. Creating, changing and launching are audited (``passes.operation.*``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session
from starlette.datastructures import FormData

from core.db.engines import tenant_session
from core.operations import service
from core.operations.errors import OperationInvalid, OperationNotFound
from core.operations.models import OperationState, PassOperation
from core.operations.report import SHOWN, operation_report, report_csv
from core.segments.service import tenant_scope
from core.tenancy.roles import Permission
from web.auditing import audit_change
from web.auth import ControlDB, Principal, require
from web.campaign_pages.form import Problems
from web.csrf import verify_csrf
from web.pass_pages.access import wallet_base, wallet_page
from web.pass_pages.operations_charts import bar_chart
from web.pass_pages.operations_preview import side_by_side
from web.pass_pages.operations_steps import STEPS, Posted, problems_of, reach_of, save_step, step_view
from web.templating import render

router = APIRouter(prefix="/t/{tenant}/wallet/operations", dependencies=[Depends(verify_csrf)])
Reader = Annotated[Principal, Depends(require(Permission.read_data))]
Marketer = Annotated[Principal, Depends(require(Permission.write_marketing))]


def _base(principal: Principal) -> str:
    return f"{wallet_base(principal)}/operations"


def _posted(form: FormData) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            found.setdefault(key, []).append(value)
    return found


def _redirect(request: Request, url: str) -> Response:
    if request.headers.get("hx-request"):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _get_or_404(tenant_db: Session, operation_id: int) -> PassOperation:
    try:
        return service.get_operation(tenant_db, operation_id)
    except OperationNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


# --- the list --------------------------------------------------------------------------------------
@router.get("", include_in_schema=False)
def operations_page(request: Request, control: ControlDB, principal: Reader) -> Response:
    """Every pass operation: its dates, wallets, state and what it issued."""
    with tenant_session(principal.tenant.database) as tenant_db:
        rows = service.list_operations(tenant_db)
    return wallet_page(request, control, principal, "operations/list.html", operations=rows,
                       ops_base=_base(principal), wallets=service.WALLETS)  # fmt: skip


# --- the steps -------------------------------------------------------------------------------------
def _step_page(
    request: Request, control: Session, principal: Principal, operation_id: int | None, step: int,
    posted: Posted | None = None, problems: Problems | None = None, status: int = 200,
) -> Response:  # fmt: skip
    scope = tenant_scope(control, principal.tenant)
    with tenant_session(principal.tenant.database) as tenant_db:
        operation = _get_or_404(tenant_db, operation_id) if operation_id is not None else None
        if operation is not None and operation.state != OperationState.draft:
            return RedirectResponse(f"{_base(principal)}/{operation_id}/report", status_code=303)
        view = step_view(tenant_db, principal.tenant, scope, operation, step, posted)
        if step == 6 and operation is not None:
            view["side"] = side_by_side(tenant_db, principal.tenant, scope, operation, "", "")
    url = f"{_base(principal)}/{operation_id}" if operation_id is not None else f"{_base(principal)}/new"
    return wallet_page(request, control, principal, "operations/step.html", status, operation=operation,
                       ops_base=_base(principal), op_url=url, problems=problems or Problems(),
                       wallets=service.WALLETS, **view)  # fmt: skip


@router.get("/new", include_in_schema=False)
def new_operation_page(request: Request, control: ControlDB, principal: Marketer) -> Response:
    """Step 1 of a new operation: its name, goal and dates."""
    return _step_page(request, control, principal, None, 1)


def _save(
    request: Request,
    control: Session,
    principal: Principal,
    operation_id: int,
    step: int,
    posted: Posted,
) -> Response:
    scope = tenant_scope(control, principal.tenant)
    with tenant_session(principal.tenant.database) as tenant_db:
        operation = _get_or_404(tenant_db, operation_id)
        try:
            save_step(tenant_db, principal.tenant, scope, operation, step, posted, principal.actor)
        except OperationInvalid as exc:
            tenant_db.rollback()
            return _step_page(request, control, principal, operation_id, step, posted, problems_of(exc), 422)
        tenant_db.commit()
        saved_id = operation.id
    audit_change(request, control, principal, "passes.operation.update", f"pass operation {saved_id}", step=step,
                 values={k: v if len(v) > 1 else v[0] for k, v in posted.items() if k != "csrf_token"})  # fmt: skip
    return _redirect(request, f"{_base(principal)}/{saved_id}/step/{min(step + 1, len(STEPS))}")


def _create(request: Request, control: Session, principal: Principal, posted: Posted) -> Response:
    with tenant_session(principal.tenant.database) as tenant_db:
        try:
            operation = service.save_basics(tenant_db, principal.actor, _one(posted, "name"), _one(posted, "goal"),
                                            _one(posted, "starts_on"), _one(posted, "ends_on"))  # fmt: skip
        except OperationInvalid as exc:
            tenant_db.rollback()
            return _step_page(request, control, principal, None, 1, posted, problems_of(exc), 422)
        tenant_db.commit()
    audit_change(request, control, principal, "passes.operation.create", f"pass operation {operation.id}",
                 name=operation.name, starts_on=str(operation.starts_on), ends_on=str(operation.ends_on))  # fmt: skip
    return _redirect(request, f"{_base(principal)}/{operation.id}/step/2")


def _one(posted: Posted, name: str) -> str:
    return (posted.get(name) or [""])[0]


@router.post("/new", include_in_schema=False)
async def create_operation(request: Request, control: ControlDB, principal: Marketer) -> Response:
    """Create the operation (audited) and go on to step 2; step 1 with its problems otherwise."""
    posted = _posted(await request.form())
    return await run_in_threadpool(_create, request, control, principal, posted)


@router.get("/{operation_id:int}/step/{step:int}", include_in_schema=False)
def step_page(
    request: Request, operation_id: int, step: int, control: ControlDB, principal: Marketer
) -> Response:
    """One step of a draft operation (a launched one shows its report)."""
    if not 1 <= step <= len(STEPS):
        raise HTTPException(404, f"There is no step {step}: the steps are 1 to {len(STEPS)}.")
    return _step_page(request, control, principal, operation_id, step)


@router.post("/{operation_id:int}/step/{step:int}", include_in_schema=False)
async def save_step_page(
    request: Request, operation_id: int, step: int, control: ControlDB, principal: Marketer
) -> Response:
    """Save one step (audited) and go on to the next; the step with its problems otherwise."""
    if not 1 <= step < len(STEPS):
        raise HTTPException(404, f"Step {step} saves nothing: the steps that save are 1 to {len(STEPS) - 1}.")
    posted = _posted(await request.form())
    return await run_in_threadpool(_save, request, control, principal, operation_id, step, posted)


@router.get("/{operation_id:int}/audience", include_in_schema=False)
def audience_partial(
    request: Request, operation_id: int, control: ControlDB, principal: Marketer, segment_id: str = ""
) -> Response:
    """The size and per-wallet reach of a segment for this operation (step 4, as the segment changes)."""
    scope = tenant_scope(control, principal.tenant)
    with tenant_session(principal.tenant.database) as tenant_db:
        operation = _get_or_404(tenant_db, operation_id)
        reach = reach_of(tenant_db, principal.tenant, scope, operation, segment_id)
    return render(request, "operations/_reach.html", {"principal": principal, "reach": reach})


@router.get("/{operation_id:int}/preview", include_in_schema=False)
def preview_partial(
    request: Request, operation_id: int, control: ControlDB, principal: Marketer, profile: str = "",
    language: str = "",
) -> Response:  # fmt: skip
    """The chosen wallets' passes side by side for a profile and language, and the validation report (step 6)."""
    scope = tenant_scope(control, principal.tenant)
    with tenant_session(principal.tenant.database) as tenant_db:
        operation = _get_or_404(tenant_db, operation_id)
        side = side_by_side(tenant_db, principal.tenant, scope, operation, profile, language)
    return render(request, "operations/_preview.html", {"principal": principal, "side": side})


def _launch(
    request: Request, control: Session, principal: Principal, operation_id: int, posted: Posted
) -> Response:
    with tenant_session(principal.tenant.database) as tenant_db:
        operation = _get_or_404(tenant_db, operation_id)
        try:
            if not _one(posted, "confirm"):
                raise OperationInvalid(
                    [("confirm", "Tick the box to confirm: passes will be issued to the segment.")]
                )
            service.launch(tenant_db, principal.tenant.slug, operation, principal.actor)
        except OperationInvalid as exc:
            tenant_db.rollback()
            return _step_page(request, control, principal, operation_id, 7, posted, problems_of(exc), 422)
        tenant_db.commit()
    audit_change(request, control, principal, "passes.operation.launch", f"pass operation {operation_id}",
                 name=operation.name, segment_id=operation.segment_id, templates=operation.template_ids(),
                 distribution=operation.distribution)  # fmt: skip
    return _redirect(request, f"{_base(principal)}/{operation_id}/report")


@router.post("/{operation_id:int}/launch", include_in_schema=False)
async def launch_operation(
    request: Request, operation_id: int, control: ControlDB, principal: Marketer
) -> Response:
    """Launch (audited): passes are issued in the background, then the campaigns start; the report follows."""
    posted = _posted(await request.form())
    return await run_in_threadpool(_launch, request, control, principal, operation_id, posted)


# --- the report ------------------------------------------------------------------------------------
@router.get("/{operation_id:int}", include_in_schema=False)
def operation_home(operation_id: int, principal: Reader) -> Response:
    """A draft opens at step 1; a launched operation at its report."""
    return RedirectResponse(f"{_base(principal)}/{operation_id}/report", status_code=303)


@router.get("/{operation_id:int}/report", include_in_schema=False)
def report_page(request: Request, operation_id: int, control: ControlDB, principal: Reader) -> Response:
    """What the operation issued, what failed and why, and its passes' activity since the launch, per day."""
    with tenant_session(principal.tenant.database) as tenant_db:
        operation = _get_or_404(tenant_db, operation_id)
        report = operation_report(tenant_db, operation)
    charts = {kind: bar_chart(f"{label} per day", report.days, report.per_day.get(kind, {}), kind)
              for kind, label in SHOWN.items()}  # fmt: skip
    return wallet_page(request, control, principal, "operations/report.html", operation=operation, report=report,
                       charts=charts, shown=SHOWN, wallets=service.WALLETS, ops_base=_base(principal),
                       steps=STEPS)  # fmt: skip


@router.get("/{operation_id:int}/report.csv", include_in_schema=False)
def report_csv_file(operation_id: int, principal: Reader) -> Response:
    """The report as a CSV file."""
    with tenant_session(principal.tenant.database) as tenant_db:
        operation = _get_or_404(tenant_db, operation_id)
        text = report_csv(operation, operation_report(tenant_db, operation))
    headers = {"Content-Disposition": f'attachment; filename="pass-operation-{operation_id}.csv"'}
    return Response(text, media_type="text/csv; charset=utf-8", headers=headers)
