"""``tessera tenant ...``: create and list tenants."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from core.cli.output import handle_errors, iso, print_json, print_panel, print_table
from core.tenancy.models import Tenant

app = typer.Typer(help="Create and list tenants (brands or companies, each with its own database).",
                  no_args_is_help=True)  # fmt: skip

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]


def ensure_control_database() -> None:
    """Create and migrate the control database only (cheap; for commands that just read it)."""
    from core.db import engines
    from core.db.migrate import upgrade
    from core.settings import get_settings

    settings = get_settings()
    if settings.uses_postgres:
        engines.ensure_postgres_database(engines.control_url(settings))
    upgrade("control", engines.control_engine())


def tenant_json(tenant: Tenant) -> dict[str, Any]:
    """The public fields of a tenant, JSON-ready."""
    return {
        "slug": tenant.slug,
        "name": tenant.name,
        "database": tenant.database,
        "created_at": iso(tenant.created_at),
    }


@app.command("create")
@handle_errors
def create(
    slug: Annotated[str, typer.Argument(help="Short id: 3-40 lower-case letters, digits and '-'.")],
    admin_email: Annotated[str, typer.Option(help="Email of the tenant's first admin (created if new).")],
    admin_password: Annotated[
        str,
        typer.Option(
            help="The admin's password (at least 8 characters; the current one if the user exists)."
        ),
    ],
    name: Annotated[
        str | None, typer.Option(help="Display name; defaults to the slug in title case.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Create a tenant with its database, an admin, an ingestion write key and an API token.

    The write key and the API token are shown once; store them now.
    """
    from core.bootstrap import migrate_all
    from core.db.engines import control_session
    from core.tenancy.onboarding import onboard_tenant

    migrate_all()
    with control_session() as session:
        new = onboard_tenant(session, slug, admin_email, admin_password, name=name, actor="cli")
        session.commit()
    if json_output:
        print_json(
            {"tenant": tenant_json(new.tenant), "write_key": new.write_key, "api_token": new.api_token}
        )
        return
    print_panel(
        [
            ("Tenant", new.tenant.slug),
            ("Name", new.tenant.name),
            ("Database", new.tenant.database),
            ("Admin", new.admin.email),
            ("Write key", new.write_key),
            ("API token", new.api_token),
        ],
        title=f"Tenant {new.tenant.slug} created",
        note="The write key and the API token are shown once: store them now.",
    )


@app.command("list")
@handle_errors
def list_(json_output: JsonOption = False) -> None:
    """List every tenant: slug, name, database and creation time."""
    from core.db.engines import control_session
    from core.tenancy.tenants import list_tenants

    ensure_control_database()
    with control_session() as session:
        tenants = list_tenants(session)
    if json_output:
        print_json([tenant_json(t) for t in tenants])
        return
    if not tenants:
        typer.echo("No tenants yet: create one with `tessera tenant create SLUG --admin-email ...`.")
        return
    rows = [(t.slug, t.name, t.database, t.created_at.strftime("%Y-%m-%d %H:%M")) for t in tenants]
    print_table(["Slug", "Name", "Database", "Created (UTC)"], rows, title="Tenants")
