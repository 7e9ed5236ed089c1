"""The ``tessera`` command line: run an installation, manage tenants and plugins.

Commands print tables for people and JSON with ``--json`` for scripts. A refused request (bad slug,
unknown tenant or plugin, ...) prints ``Error: ...`` on one line of stderr and exits with code 2.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from core.cli import imports, plugins, server, tenant, traits
from core.cli.output import fail

app = typer.Typer(
    name="tessera",
    help="Tessera, the plugin-based Customer Data Platform. Configure with TESSERA_* environment variables.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
server.register(app)
app.add_typer(tenant.app, name="tenant")
app.add_typer(plugins.app, name="plugins")
app.add_typer(imports.app, name="import")
app.add_typer(traits.app, name="traits")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"tessera {version('tessera')}")
        except PackageNotFoundError:
            typer.echo("tessera (not installed)")
        raise typer.Exit()


@app.callback()
def _root(
    _version_flag: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Tessera, the plugin-based Customer Data Platform. Configure with TESSERA_* environment variables."""


def main() -> None:
    """Entry point of the ``tessera`` console script."""
    from pydantic import ValidationError

    from core.settings import get_settings

    try:
        settings = get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"TESSERA_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        try:
            fail(f"invalid settings: {problems}")
        except typer.Exit as stop:
            sys.exit(stop.exit_code)
    level = settings.logging_level
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if level > logging.DEBUG:  # Alembic explains every step at INFO; `migrate` prints the outcome
        logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
    app()


__all__ = ["app", "main"]
