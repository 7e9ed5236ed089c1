"""CSV imports of profiles and transactions: preview a file, create a run, run it in chunks.

An :class:`ImportRun` (tenant database) records the file, its mapping and the progress. Running it
reads the file record by record, converts each row (:mod:`core.imports.convert`) and stores the
good ones through :func:`core.ingest.service.store` in chunks of :data:`CHUNK_ROWS` rows; each
chunk is one transaction holding its events, the ``core.process_events`` job and the run's
counters, so a run interrupted half-way resumes after its last stored chunk. Bad rows are reported
with their line; the others are imported. Message ids are deterministic, so importing the same file
again stores nothing and reports every row as already imported.

From the UI, :func:`create_run` queues the durable job ``core.import_csv`` (:func:`import_csv`),
which a worker runs; the CLI creates the run and calls :func:`run_import` itself.
"""

from __future__ import annotations

import csv
import io
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from core import __version__
from core.audit import service as audit
from core.db.base import utcnow
from core.db.engines import control_session, tenant_engine
from core.imports.convert import EventRow, RowConverter
from core.imports.mapping import Target, build_mapping, check_mapping, specs
from core.imports.models import MAX_STORED_ERRORS, ImportKind, ImportRun, ImportStatus
from core.imports.reader import CsvSource, ImportProblem
from core.ingest.service import Prepared, store
from core.plugin_api import IdentifierType
from core.queue.outbox import add_job
from core.settings import get_settings

log = logging.getLogger(__name__)
IMPORT_JOB = "core.import_csv"
CHUNK_ROWS = 1000
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
SAMPLE_ROWS = 3

Progress = Callable[[int, int], None]
"""Called after each stored chunk with (processed rows, total rows)."""


@dataclass(frozen=True)
class TenantContext:
    """What importing for one tenant needs from the control database and the plugins."""

    slug: str
    tenant_id: int
    database: str
    default_region: str
    types: Mapping[str, IdentifierType]
    channels: frozenset[str]


def tenant_context(slug: str) -> TenantContext:
    """The tenant's database, phone region, identifier types and channels (of its enabled plugins).

    Raises :class:`core.tenancy.errors.NotFound` for an unknown tenant.
    """
    from core.plugins import get_host  # late: the plugin host loads core.builtins, which imports us
    from core.profiles.jobs import identifier_types_for
    from core.tenancy.plugin_settings import enabled_plugins
    from core.tenancy.tenants import get_tenant

    host = get_host()
    with control_session() as control:
        tenant = get_tenant(control, slug)
        enabled = enabled_plugins(control, tenant, host)
    assert tenant.id is not None
    return TenantContext(
        slug=tenant.slug, tenant_id=tenant.id, database=tenant.database, default_region=tenant.default_region,
        types=identifier_types_for(enabled), channels=frozenset(host.channels_for(enabled)),
    )  # fmt: skip


# --- looking at a file before importing it ---------------------------------------------------------
@dataclass
class Preview:
    """A file's header, a few rows and the mapping its columns get (``problem``: why it cannot run)."""

    headers: list[str]
    delimiter: str
    samples: list[list[str]]
    targets: dict[str, Target]
    problem: str | None = None

    @property
    def mapping(self) -> dict[str, str]:
        """The mapping as ``{column: spec}``."""
        return specs(self.targets)


def preview(
    path: Path, kind: str, context: TenantContext, overrides: Mapping[str, str] | None = None
) -> Preview:
    """Read the header and the first rows; map the columns (overrides first, then automatically).

    Raises :class:`ImportProblem` when the file cannot be read or an override is invalid; a mapping
    that lacks what ``kind`` needs (no identifier, ...) is returned with ``problem`` set.
    """
    source = CsvSource(path)
    targets = build_mapping(source.headers, kind, context.types, overrides, context.channels, check=False)
    samples: list[list[str]] = []
    for record in source.records():
        if len(samples) >= SAMPLE_ROWS:
            break
        if record.problem is None:
            samples.append(record.fields)
    try:
        check_mapping(targets, kind)
        problem = None
    except ImportProblem as exc:
        problem = str(exc)
    return Preview(source.headers, source.delimiter, samples, targets, problem)


# --- runs ----------------------------------------------------------------------------------------
def create_run(
    session: Session,
    context: TenantContext,
    *,
    kind: str,
    filename: str,
    path: Path,
    mapping: Mapping[str, str],
    created_by: str,
    queue: bool = True,
) -> ImportRun:
    """Add an import run (and, with ``queue``, its ``core.import_csv`` job); the caller commits."""
    run = ImportRun(
        kind=ImportKind(kind).value, filename=filename[:255], path=str(path), mapping=dict(mapping),
        created_by=created_by[:320], status=ImportStatus.queued.value,
    )  # fmt: skip
    session.add(run)
    session.flush()
    if queue:
        add_job(session, context.slug, IMPORT_JOB, {"run_id": run.id}, idempotency_key=f"import:{run.id}",
                max_attempts=5)  # fmt: skip
    return run


def record_start(
    control: Session, context: TenantContext, run: ImportRun, actor: str, ip: str = "", user_agent: str = ""
) -> None:
    """The ``import.start`` audit entry (control database); the caller commits."""
    audit.record(
        control, actor=actor, action="import.start", tenant_id=context.tenant_id, target=run.filename,
        detail={"run": run.id, "kind": run.kind, "mapping": run.mapping}, ip=ip, user_agent=user_agent,
    )  # fmt: skip


def list_runs(session: Session, limit: int = 100) -> list[ImportRun]:
    """The tenant's imports, newest first."""
    return list(session.exec(select(ImportRun).order_by(col(ImportRun.id).desc()).limit(limit)))


def get_run(session: Session, run_id: int) -> ImportRun | None:
    """One import run, or None."""
    return session.get(ImportRun, run_id)


@dataclass
class _Chunk:
    rows: list[EventRow] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def _fail(session: Session, run: ImportRun, reason: str) -> ImportRun:
    run.status = ImportStatus.failed.value
    run.detail = reason
    run.finished_at = utcnow()
    session.add(run)
    session.commit()
    return run


def run_import(
    tenant_slug: str,
    run_id: int,
    *,
    progress: Progress | None = None,
    on_error: Callable[[dict[str, Any]], None] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportRun:
    """Run (or resume) an import; returns the finished run. Finished runs are returned unchanged.

    ``on_error`` sees every row error (the run keeps the first :data:`MAX_STORED_ERRORS`). A file
    or mapping that cannot be imported at all fails the run with the reason in ``detail``; any other
    exception is raised, and running again resumes after the last stored chunk.
    """
    context = tenant_context(tenant_slug)
    with Session(tenant_engine(context.database), expire_on_commit=False) as session:
        run = session.get(ImportRun, run_id)
        if run is None:
            raise LookupError(f"No import {run_id} in tenant {tenant_slug!r}.")
        if run.finished:
            return run
        try:
            source = CsvSource(Path(run.path))
            targets = build_mapping(source.headers, run.kind, context.types, run.mapping, context.channels)
            if not run.total_rows:
                run.total_rows = source.count()
        except ImportProblem as exc:
            return _fail(session, run, str(exc))
        run.status = ImportStatus.running.value
        run.started_at = run.started_at or utcnow()
        run.mapping = specs(targets)
        session.add(run)
        session.commit()
        if progress:
            progress(run.processed_rows, run.total_rows)
        received_at = utcnow()
        context_base = {
            "library": {"name": "tessera-csv-import", "version": __version__},
            "import": {"run": run.id, "file": run.filename},
        }
        converter = RowConverter(run.kind, source.headers, targets, context.types, context.default_region,
                                 received_at=received_at, context=context_base)  # fmt: skip
        already = run.processed_rows  # rows stored by an earlier, interrupted attempt
        chunk = _Chunk()
        index = 0
        try:
            for record in source.records():
                index += 1
                if record.problem is not None:
                    row, problems = None, [record.problem]
                else:
                    row, problems = converter.convert(record.line, record.fields)
                if index <= already:
                    continue  # converted all the same: later rows are checked against earlier orders
                if row is not None:
                    chunk.rows.append(row)
                else:
                    error = {"line": record.line, "reason": "; ".join(problems)}
                    chunk.errors.append(error)
                    if on_error:
                        on_error(error)
                if index - run.processed_rows >= chunk_rows:
                    _flush(session, context.slug, run, chunk, index)
                    chunk = _Chunk()
                    if progress:
                        progress(run.processed_rows, run.total_rows)
        except ImportProblem as exc:
            session.rollback()
            return _fail(session, run, str(exc))
        _flush(session, context.slug, run, chunk, index)
        run.status = ImportStatus.done.value
        run.total_rows = max(run.total_rows, index)
        run.finished_at = utcnow()
        run.detail = None
        session.add(run)
        session.commit()
        if progress:
            progress(run.processed_rows, run.total_rows)
        log.info("import %s/%s done: %d rows, %d new, %d already imported, %d errors", tenant_slug, run.id,
                 run.processed_rows, run.new_events, run.duplicates, run.error_count)  # fmt: skip
        return run


def _flush(session: Session, tenant_slug: str, run: ImportRun, chunk: _Chunk, processed: int) -> None:
    """Store a chunk's events and the run's counters in one transaction."""
    if chunk.rows:
        prepared = Prepared(rows=[r.row for r in chunk.rows], encoded=[r.encoded for r in chunk.rows])
        result = store(session, tenant_slug, prepared)
        run.new_events += result.accepted
        run.duplicates += result.duplicates
    if chunk.errors:
        run.error_count += len(chunk.errors)
        room = MAX_STORED_ERRORS - len(run.errors)
        if room > 0:
            run.errors = [*run.errors, *chunk.errors[:room]]
    run.processed_rows = processed
    session.add(run)
    session.commit()


def import_csv(tenant_slug: str, payload: dict[str, Any]) -> None:
    """The ``core.import_csv`` job: run the import ``payload["run_id"]`` (resuming if interrupted)."""
    run_id = int(payload["run_id"])
    try:
        run_import(tenant_slug, run_id)
    except Exception as exc:
        _note_interruption(tenant_slug, run_id, exc)
        raise


def _note_interruption(tenant_slug: str, run_id: int, exc: Exception) -> None:
    try:
        context = tenant_context(tenant_slug)
        with Session(tenant_engine(context.database)) as session:
            run = session.get(ImportRun, run_id)
            if run is not None and not run.finished:
                run.status = ImportStatus.queued.value
                run.detail = f"Interrupted, will be retried: {type(exc).__name__}: {exc}"[:2000]
                session.add(run)
                session.commit()
    except Exception:  # noqa: BLE001 - the job's own error is the one to report
        log.exception("could not record the interruption of import %s/%s", tenant_slug, run_id)


# --- files ---------------------------------------------------------------------------------------
def uploads_folder(tenant_slug: str) -> Path:
    """Where a tenant's uploaded files are kept: ``<data_dir>/imports/<tenant>/``."""
    return get_settings().data_dir / "imports" / tenant_slug


def new_upload_path(tenant_slug: str) -> tuple[str, Path]:
    """A fresh ``(upload id, path)`` for an uploaded file (the folder is created)."""
    upload_id = uuid.uuid4().hex
    folder = uploads_folder(tenant_slug)
    folder.mkdir(parents=True, exist_ok=True)
    return upload_id, folder / f"{upload_id}.csv"


def upload_path(tenant_slug: str, upload_id: str) -> Path:
    """The path of an upload id (32 hex digits, else ValueError: it comes from a form)."""
    if len(upload_id) != 32 or any(c not in "0123456789abcdef" for c in upload_id):
        raise ValueError("invalid upload id")
    return uploads_folder(tenant_slug) / f"{upload_id}.csv"


def errors_csv(errors: Iterable[Mapping[str, Any]]) -> str:
    """Row errors as CSV text: ``line,reason``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["line", "reason"])
    for error in errors:
        writer.writerow([error["line"], error["reason"]])
    return buffer.getvalue()
