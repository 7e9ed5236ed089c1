"""CSV imports in the UI: upload a file, map its columns, start, follow the run live.

Seeing imports needs ``read_data``; uploading and starting one needs ``write_marketing``. The
upload is kept under ``<data_dir>/imports/<tenant>/<uuid>.csv``; starting creates the
:class:`~core.imports.models.ImportRun` and its durable ``core.import_csv`` job (a worker runs
it), and records ``import.start`` in the audit log. The run's page polls its progress every second
until it is done.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session
from starlette.datastructures import UploadFile

from core.db.engines import tenant_session
from core.imports import service
from core.imports.mapping import choices
from core.imports.models import ImportKind
from core.imports.reader import DELIMITER_NAMES, ImportProblem
from core.tenancy.roles import Permission
from web.auth import ControlDB, Principal, client_info, require
from web.csrf import verify_csrf
from web.routes.pages import page_context
from web.templating import render

router = APIRouter(prefix="/t/{tenant}/imports")
Reader = Annotated[Principal, Depends(require(Permission.read_data))]
Marketer = Annotated[Principal, Depends(require(Permission.write_marketing))]
MAX_MB = service.MAX_UPLOAD_BYTES // (1024 * 1024)
TOO_LARGE = f"The file is larger than {MAX_MB} MB: split it into smaller files and import each."
COPY_CHUNK = 1024 * 1024


async def limit_upload(request: Request) -> None:
    """Refuse an upload whose announced size is over the limit before reading it (413)."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > service.MAX_UPLOAD_BYTES + 64 * 1024:
        raise HTTPException(413, TOO_LARGE)


def _context(request: Request, session: Session, principal: Principal, **extra: Any) -> dict[str, Any]:
    return page_context(request, session, principal, section="profiles", **extra)


def _index(
    request: Request, session: Session, principal: Principal, error: str | None = None, status: int = 200
) -> Response:
    with tenant_session(principal.tenant.database) as tenant_db:
        runs = service.list_runs(tenant_db)
    context = _context(request, session, principal, runs=runs, error=error, max_mb=MAX_MB,
                       kinds=[k.value for k in ImportKind])  # fmt: skip
    return render(request, "imports/index.html", context, status_code=status)


@router.get("", include_in_schema=False)
def imports_page(request: Request, session: ControlDB, principal: Reader) -> Response:
    """Past imports and (for marketers) the upload form."""
    return _index(request, session, principal)


def _kind(value: Any) -> str:
    if value not in {k.value for k in ImportKind}:
        raise HTTPException(400, "Choose what the file holds: profiles or transactions.")
    return str(value)


def _mapping_page(
    request: Request,
    session: Session,
    principal: Principal,
    *,
    kind: str,
    upload_id: str,
    filename: str,
    overrides: dict[str, str] | None = None,
    error: str | None = None,
) -> Response:
    context_ = service.tenant_context(principal.tenant.slug)
    path = service.upload_path(principal.tenant.slug, upload_id)
    try:
        found = service.preview(path, kind, context_, overrides)
    except ImportProblem as exc:
        if overrides is None:  # the file itself cannot be read
            path.unlink(missing_ok=True)
            return _index(request, session, principal, error=f"{filename}: {exc}", status=400)
        found = service.preview(path, kind, context_)
        error = str(exc)
    columns = [
        {
            "index": index,
            "header": header,
            "samples": [row[index] for row in found.samples if index < len(row)],
            "current": found.mapping[header],
            "choices": choices(kind, header, context_.types, found.mapping[header], context_.channels),
        }
        for index, header in enumerate(found.headers)
    ]
    context = _context(
        request, session, principal, kind=kind, upload_id=upload_id, filename=filename, columns=columns,
        delimiter=DELIMITER_NAMES.get(found.delimiter, found.delimiter), error=error or found.problem,
    )  # fmt: skip
    return render(request, "imports/mapping.html", context, status_code=400 if error else 200)


@router.post("/upload", include_in_schema=False, dependencies=[Depends(limit_upload), Depends(verify_csrf)])
async def upload(request: Request, session: ControlDB, principal: Marketer) -> Response:
    """Keep the uploaded file and show its columns with their proposed mapping."""
    form = await request.form()
    kind = _kind(form.get("kind"))
    file = form.get("file")
    if not isinstance(file, UploadFile) or not file.filename:
        return _index(request, session, principal, error="Choose a CSV file to upload.", status=400)
    filename = Path(file.filename.replace("\\", "/")).name[:200] or "upload.csv"
    upload_id, path = service.new_upload_path(principal.tenant.slug)
    size = 0
    try:
        with open(path, "wb") as out:
            while chunk := await file.read(COPY_CHUNK):
                size += len(chunk)
                if size > service.MAX_UPLOAD_BYTES:
                    raise HTTPException(413, TOO_LARGE)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if size == 0:
        path.unlink(missing_ok=True)
        return _index(request, session, principal, error=f"{filename} is empty.", status=400)
    return await run_in_threadpool(
        _mapping_page, request, session, principal, kind=kind, upload_id=upload_id, filename=filename
    )


@router.post("/start", include_in_schema=False, dependencies=[Depends(verify_csrf)])
async def start(request: Request, session: ControlDB, principal: Marketer) -> Response:
    """Create the run with the chosen mapping, queue its job, audit it, and show its progress."""
    form = await request.form()
    kind = _kind(form.get("kind"))
    upload_id = str(form.get("upload", ""))
    filename = str(form.get("filename", ""))[:200] or "upload.csv"
    try:
        path = service.upload_path(principal.tenant.slug, upload_id)
    except ValueError:
        raise HTTPException(400, "Unknown upload: upload the file again.") from None
    if not path.is_file():
        raise HTTPException(400, "Unknown upload: upload the file again.")
    return await run_in_threadpool(_start, request, session, principal, form, kind, upload_id, filename, path)


def _start(
    request: Request,
    session: Session,
    principal: Principal,
    form: Any,
    kind: str,
    upload_id: str,
    filename: str,
    path: Path,
) -> Response:
    context_ = service.tenant_context(principal.tenant.slug)
    try:
        headers = service.preview(path, kind, context_).headers
    except ImportProblem as exc:
        raise HTTPException(400, str(exc)) from exc
    overrides: dict[str, str] = {}
    for index, header in enumerate(headers):
        value = form.get(f"map_{index}")
        if isinstance(value, str) and value:
            overrides[header] = value
    try:
        found = service.preview(path, kind, context_, overrides)
        if found.problem:
            raise ImportProblem(found.problem)
    except ImportProblem as exc:
        return _mapping_page(request, session, principal, kind=kind, upload_id=upload_id, filename=filename,
                             overrides=overrides, error=str(exc))  # fmt: skip
    with tenant_session(principal.tenant.database) as tenant_db:
        run = service.create_run(tenant_db, context_, kind=kind, filename=filename, path=path,
                                 mapping=found.mapping, created_by=principal.actor)  # fmt: skip
        tenant_db.commit()
    service.record_start(session, context_, run, principal.actor, **client_info(request))
    session.commit()
    return RedirectResponse(f"/t/{principal.tenant.slug}/imports/{run.id}", status_code=303)


def _run_or_404(principal: Principal, run_id: int) -> Any:
    with tenant_session(principal.tenant.database) as tenant_db:
        run = service.get_run(tenant_db, run_id)
    if run is None:
        raise HTTPException(404, f"No import {run_id}.")
    return run


@router.get("/{run_id}", include_in_schema=False)
def run_page(request: Request, run_id: int, session: ControlDB, principal: Reader) -> Response:
    """One import: live progress, then the summary and the rows that were not imported."""
    run = _run_or_404(principal, run_id)
    return render(request, "imports/run.html", _context(request, session, principal, run=run))


@router.get("/{run_id}/progress", include_in_schema=False)
def progress(request: Request, run_id: int, principal: Reader) -> Response:
    """The progress fragment alone (polled every second while the import runs)."""
    run = _run_or_404(principal, run_id)
    return render(request, "imports/_progress.html", {"run": run, "principal": principal})


@router.get("/{run_id}/errors.csv", include_in_schema=False)
def errors_csv(run_id: int, principal: Reader) -> Response:
    """The rows that were not imported, as CSV (line, reason)."""
    run = _run_or_404(principal, run_id)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(run.filename).stem)[:80] or "import"
    return Response(service.errors_csv(run.errors), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{stem}-errors.csv"'})  # fmt: skip
