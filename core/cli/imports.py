"""``tessera import profiles|transactions FILE --tenant SLUG``: import a CSV file.

Exit codes: 0 when the import ran (rows with errors are reported, the good rows imported), 1 when
it stopped half-way (the reason is printed; the rows stored so far stay), 2 for a bad argument,
an unknown tenant or a file that cannot be read or mapped.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from core.cli.output import console, fail, handle_errors, print_json, print_table, say
from core.cli.tenant import JsonOption, ensure_control_database

app = typer.Typer(
    help="Import profiles or transactions from a CSV file (comma, semicolon or tab separated, UTF-8).",
    no_args_is_help=True,
)

SHOWN_ERRORS = 50
FileArgument = Annotated[
    Path, typer.Argument(help="The CSV file; its first line names the columns.", show_default=False)
]
TenantOption = Annotated[str, typer.Option("--tenant", help="Slug of the tenant to import into.")]
MapOption = Annotated[
    list[str] | None,
    typer.Option(
        "--map",
        metavar="COLUMN=FIELD",
        help="Map a column to a field (repeatable): email, phone, user_id, anonymous_id, timestamp, "
        "ignore, trait:NAME, consent:CHANNEL (profiles); order_id, total, revenue, currency, products, "
        "sku, property:NAME (transactions). Other columns are mapped from their header.",
    ),
]
ErrorsOutOption = Annotated[
    Path | None,
    typer.Option(
        "--errors-out", help="Write every row error to this CSV file (line,reason).", dir_okay=False
    ),
]


@app.command("profiles")
@handle_errors
def profiles(
    file: FileArgument,
    tenant: TenantOption,
    map_: MapOption = None,
    errors_out: ErrorsOutOption = None,
    json_output: JsonOption = False,
) -> None:
    """Import profiles: each row becomes an identify event (identifiers, traits, consents)."""
    _import("profiles", file, tenant, map_ or [], errors_out, json_output)


@app.command("transactions")
@handle_errors
def transactions(
    file: FileArgument,
    tenant: TenantOption,
    map_: MapOption = None,
    errors_out: ErrorsOutOption = None,
    json_output: JsonOption = False,
) -> None:
    """Import transactions: each row becomes an "Order Completed" event of its customer."""
    _import("transactions", file, tenant, map_ or [], errors_out, json_output)


def _import(
    kind: str, file: Path, tenant_slug: str, options: list[str], errors_out: Path | None, json_output: bool
) -> None:
    from core.db.engines import control_session, tenant_session
    from core.imports import service
    from core.imports.mapping import parse_map_options
    from core.imports.reader import ImportProblem
    from core.tenancy.tenants import get_tenant, provision_database

    ensure_control_database()
    with control_session() as control:
        tenant = get_tenant(control, tenant_slug)
    provision_database(tenant)  # the tenant database at the newest revision
    context = service.tenant_context(tenant_slug)
    path = file.expanduser().resolve()
    try:
        overrides = parse_map_options(options)
        preview = service.preview(path, kind, context, overrides)
    except ImportProblem as exc:
        fail(str(exc))
    if preview.problem:
        fail(f"{preview.problem} Map a column with --map COLUMN=FIELD.")
    errors_file: Any = None
    if errors_out is not None:
        try:
            errors_file = open(errors_out, "w", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as exc:
            fail(f"Cannot write {errors_out}: {exc.strerror or exc}.")
    with tenant_session(context.database) as session:
        run = service.create_run(session, context, kind=kind, filename=path.name, path=path,
                                 mapping=preview.mapping, created_by="cli", queue=False)  # fmt: skip
        session.commit()
    with control_session() as control:
        service.record_start(control, context, run, actor="cli")
        control.commit()
    assert run.id is not None
    errors: list[dict[str, Any]] = []
    writer = csv.writer(errors_file, lineterminator="\n") if errors_file else None
    if writer:
        writer.writerow(["line", "reason"])

    def on_error(error: dict[str, Any]) -> None:
        errors.append(error)
        if writer:
            writer.writerow([error["line"], error["reason"]])

    progress = Progress(
        TextColumn(f"Importing {kind}"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
        TimeElapsedColumn(), console=console(stderr=True), disable=json_output, transient=False,
    )  # fmt: skip
    task = progress.add_task(kind, total=None)
    try:
        with progress:
            run = service.run_import(
                tenant_slug, run.id, on_error=on_error,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )  # fmt: skip
    finally:
        if errors_file:
            errors_file.close()
    if json_output:
        print_json(_summary(run, preview.mapping, errors))
    else:
        _print_summary(run, preview.mapping, errors, errors_out)
    if run.status == "failed":
        fail(f"the import stopped: {run.detail}", code=1)


def _summary(run: Any, mapping: dict[str, str], errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "kind": run.kind,
        "file": run.path,
        "status": run.status,
        "mapping": run.mapping or mapping,
        "rows": run.processed_rows,
        "new": run.new_events,
        "already_imported": run.duplicates,
        "error_count": run.error_count,
        "errors": errors,
        "detail": run.detail,
    }


def _print_summary(
    run: Any, mapping: dict[str, str], errors: list[dict[str, Any]], errors_out: Path | None
) -> None:
    print_table(["Column", "Field"], sorted((run.mapping or mapping).items()), title="Mapping")
    say(
        "[bold]{}[/] rows read: [green]{} new[/], {} already imported, "
        + ("[red]{} with errors[/]" if run.error_count else "{} with errors"),
        run.processed_rows, run.new_events, run.duplicates, run.error_count,
    )  # fmt: skip
    if errors:
        print_table(["Line", "Reason"], [(e["line"], e["reason"]) for e in errors[:SHOWN_ERRORS]],
                    title="Rows not imported")  # fmt: skip
        if len(errors) > SHOWN_ERRORS:
            where = (
                f"all of them are in {errors_out}"
                if errors_out
                else "see them all with --json or --errors-out FILE"
            )
            say("{} more row errors: {}.", len(errors) - SHOWN_ERRORS, where)
    if run.new_events:
        say("The new events are folded into profiles by the worker (`tessera serve` or `tessera worker`).")
