"""``tessera plugins ...``: see installed plugins and enable or disable them per tenant."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from core.cli.output import fail, handle_errors, print_json, print_table, say
from core.cli.tenant import JsonOption, ensure_control_database

if TYPE_CHECKING:
    from sqlmodel import Session

    from core.plugins import PluginHost
    from core.tenancy.models import Tenant

log = logging.getLogger(__name__)
app = typer.Typer(help="List installed plugins; enable or disable them for a tenant.", no_args_is_help=True)

TenantOption = Annotated[str, typer.Option("--tenant", help="Slug of the tenant.")]
NameArgument = Annotated[str, typer.Argument(help="Plugin name (its entry-point name, see `plugins list`).")]


def change_plugin(
    session: Session, tenant: Tenant, host: PluginHost, name: str, enabled: bool, live: bool = False
) -> str:
    """Enable (in sandbox or live mode) or disable a plugin and audit it; the mode. Caller commits."""
    from core.audit.service import record
    from core.tenancy.plugin_settings import set_enabled

    row = set_enabled(session, tenant, host, name, enabled, sandbox=not live if enabled else None)
    mode = "sandbox" if row.sandbox else "live"
    action = "plugin.enable" if enabled else "plugin.disable"
    detail = {"mode": mode} if enabled else {}
    record(session, actor="cli", action=action, tenant_id=tenant.id, target=name, detail=detail)
    return mode


def notify_plugin(host: PluginHost, name: str, tenant_slug: str, enabled: bool) -> str | None:
    """Call ``on_plugin_enabled``/``on_plugin_disabled`` on that plugin only; an error message or None."""
    hook_name = "on_plugin_enabled" if enabled else "on_plugin_disabled"
    try:
        getattr(host.hooks_for({name}), hook_name)(tenant=tenant_slug)
    except Exception as exc:  # a plugin's bug must not hide that the change was saved
        log.debug("plugin %s %s failed", name, hook_name, exc_info=True)
        return f"plugin {name!r} {hook_name} hook failed: {exc!r}"
    return None


@app.command("list")
@handle_errors
def list_(
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Also show whether this tenant enabled each plugin.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """List installed plugins with their status; broken ones show the reason."""
    from core.plugins import get_host

    host = get_host()
    settings: dict[str, Any] | None = None
    if tenant is not None:
        from core.db.engines import control_session
        from core.tenancy.plugin_settings import settings_of
        from core.tenancy.tenants import get_tenant

        ensure_control_database()
        with control_session() as session:
            settings = settings_of(session, get_tenant(session, tenant))
    items = []
    for name in sorted(host.plugins):
        info = host.plugins[name]
        item: dict[str, Any] = {
            "name": info.name,
            "distribution": info.distribution,
            "version": info.version,
            "status": "broken" if info.broken else "ok",
            "error": info.error,
            "channels": list(info.channels),
        }
        if settings is not None:
            row = settings.get(name)
            item["enabled"] = bool(row and row.enabled)
            item["mode"] = "sandbox" if row is None or row.sandbox else "live"
        items.append(item)
    if json_output:
        print_json(items)
        return
    if not items:
        typer.echo("No plugins installed.")
        return
    columns = ["Name", "Distribution", "Version", "Status", "Channels"]
    if settings is not None:
        columns += ["Enabled", "Mode"]
    any_broken = any(item["status"] == "broken" for item in items)
    if any_broken:
        columns.append("Error")
    rows = []
    for item in items:
        status = Text("ok", style="green") if item["status"] == "ok" else Text("broken", style="bold red")
        row = [item["name"], item["distribution"], item["version"], status, ", ".join(item["channels"])]
        if settings is not None:
            row += ["yes" if item["enabled"] else "no", item["mode"]]
        if any_broken:
            row.append(item["error"])
        rows.append(row)
    print_table(columns, rows, title="Plugins" + (f" for tenant {tenant}" if tenant else ""))


def _set(name: str, tenant_slug: str, enabled: bool, live: bool, json_output: bool) -> None:
    from core.bootstrap import migrate_all
    from core.db.engines import control_session
    from core.plugins import get_host
    from core.tenancy.tenants import get_tenant

    host = get_host()
    migrate_all()
    with control_session() as session:
        tenant = get_tenant(session, tenant_slug)
        mode = change_plugin(session, tenant, host, name, enabled, live)
        session.commit()
    problem = notify_plugin(host, name, tenant_slug, enabled)
    if json_output:
        print_json({"plugin": name, "tenant": tenant_slug, "enabled": enabled, "mode": mode})
    elif enabled:
        say("Enabled plugin [bold]{}[/] for tenant [bold]{}[/] in {} mode.", name, tenant_slug, mode)
    else:
        say("Disabled plugin [bold]{}[/] for tenant [bold]{}[/].", name, tenant_slug)
    if problem:
        fail(f"the change was saved, but the {problem}", code=1)


@app.command("enable")
@handle_errors
def enable(
    name: NameArgument,
    tenant: TenantOption,
    live: Annotated[
        bool, typer.Option("--live", help="Live mode: really deliver (default: sandbox, nothing leaves).")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Enable a plugin for a tenant, in sandbox mode unless --live."""
    _set(name, tenant, True, live, json_output)


@app.command("disable")
@handle_errors
def disable(name: NameArgument, tenant: TenantOption, json_output: JsonOption = False) -> None:
    """Disable a plugin for a tenant; nothing of it is called for that tenant afterwards."""
    _set(name, tenant, False, False, json_output)
