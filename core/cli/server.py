"""``tessera migrate | serve | worker | demo``: running an installation."""

from __future__ import annotations

import atexit
import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from core.cli.output import handle_errors, print_json, print_panel, say, warn
from core.cli.tenant import JsonOption
from core.settings import get_settings

if TYPE_CHECKING:
    from core.plugins import PluginHost

log = logging.getLogger(__name__)

HostOption = Annotated[str, typer.Option("--host", help="Interface to listen on (0.0.0.0 for every one).")]
PortOption = Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port to listen on.")]


# --- migrate -----------------------------------------------------------------------------------
@handle_errors
def migrate(json_output: JsonOption = False) -> None:
    """Create the control database if needed and migrate it and every tenant database."""
    from core.bootstrap import migrate_all

    report = migrate_all()
    if json_output:
        print_json({"control": report.control, "tenants": report.tenants})
        return
    say("Migrated the control database [bold]{}[/]", report.control)
    say(
        "and {} tenant database(s){}",
        len(report.tenants),
        ": " + ", ".join(report.tenants) if report.tenants else ".",
    )


# --- serve -------------------------------------------------------------------------------------
def _uvicorn_logging() -> dict[str, Any]:
    """uvicorn's log options: our level, and access lines on stderr too (stdout is for output)."""
    import copy

    import uvicorn.config

    level = get_settings().log_level.lower()
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    return {"log_config": config, "log_level": level if level in uvicorn.config.LOG_LEVELS else "info"}


def _start_embedded_worker() -> Any:
    """On the embedded default, the in-process worker (queue and web share this process); else None."""
    if get_settings().uses_redis:
        return None
    from core.queue.worker import InProcessWorker

    worker = InProcessWorker()
    worker.start()
    log.info("in-process worker started")
    return worker


def reload_app() -> Any:
    """App factory for ``serve --reload``: runs in uvicorn's child process, with the worker beside it."""
    from web.app import create_app

    app = create_app()
    worker = _start_embedded_worker()
    if worker is not None:
        atexit.register(worker.stop)
    return app


def run_server(host: str, port: int, reload: bool = False, workers: int = 1) -> None:
    """Serve the web app with uvicorn until stopped (databases must be migrated already).

    ``workers`` > 1 runs that many server processes on the port (PostgreSQL + Redis only).
    """
    import uvicorn

    url = f"http://{host}:{port}"
    if workers > 1:
        settings = get_settings()
        if not (settings.uses_postgres and settings.uses_redis):
            raise typer.BadParameter(
                "several server processes need PostgreSQL and Redis: SQLite takes one writer at a time "
                "and the embedded queue lives in one process",
                param_hint="--workers",
            )
        log.info("Tessera serving on %s with %d processes", url, workers)
        uvicorn.run("web.app:create_app", factory=True, host=host, port=port, workers=workers,
                    **_uvicorn_logging())  # fmt: skip
        return
    if reload:
        root = Path(__file__).resolve().parents[2]
        dirs = [str(root / d) for d in ("core", "web", "plugins") if (root / d).is_dir()]
        log.info("Tessera serving on %s (reloading on code changes)", url)
        uvicorn.run("core.cli.server:reload_app", factory=True, host=host, port=port, reload=True,
                    reload_dirs=dirs or None, **_uvicorn_logging())  # fmt: skip
        return
    from web.app import create_app

    app = create_app()
    worker = _start_embedded_worker()
    try:
        log.info("Tessera serving on %s", url)
        uvicorn.run(app, host=host, port=port, **_uvicorn_logging())
    finally:
        if worker is not None:
            worker.stop()
            log.info("in-process worker stopped")


@handle_errors
def serve(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    reload: Annotated[
        bool, typer.Option("--reload/--no-reload", help="Restart on code changes (dev).")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", min=1, help="Server processes (PostgreSQL + Redis only; one CPU core each)."
        ),
    ] = 1,
) -> None:
    """Migrate, then serve the web UI and API (with an in-process worker unless Redis is set)."""
    from core.bootstrap import migrate_all

    if workers > 1 and reload:
        raise typer.BadParameter("--reload runs one process", param_hint="--workers")
    migrate_all()
    run_server(host, port, reload, workers)


# --- worker ------------------------------------------------------------------------------------
def run_embedded_worker(threads: int) -> None:
    """Run the in-process worker and sweeper in the foreground until Ctrl-C or SIGTERM."""
    from core.queue.worker import InProcessWorker

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    worker = InProcessWorker(threads)
    try:
        worker.start()
        log.info("in-process worker running with %d thread(s); Ctrl-C stops it", threads)
        while not stop.wait(1.0):
            pass
    finally:
        for sig, handler in previous.items():  # a second Ctrl-C while stopping aborts
            signal.signal(sig, handler)
        worker.stop()
        log.info("worker stopped")


@handle_errors
def worker(
    processes: Annotated[
        int, typer.Option("--processes", min=1, help="Worker processes (Redis only; embedded runs one).")
    ] = 2,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads", min=1, help="Threads per process (default: TESSERA_WORKER_THREADS, else 4)."
        ),
    ] = None,
) -> None:
    """Migrate, then run background workers in the foreground (dramatiq on Redis, else in-process)."""
    from core.bootstrap import migrate_all
    from core.db.engines import dispose_engines

    settings = get_settings()
    threads = threads or settings.worker_threads
    migrate_all()
    if settings.uses_redis:
        from core.queue.worker import run_worker_processes

        dispose_engines()
        log.info("starting %d worker process(es) with %d thread(s) each", processes, threads)
        raise typer.Exit(run_worker_processes(processes, threads))
    if processes != 2:
        log.info("--processes is ignored without TESSERA_REDIS_URL: the embedded worker is one process")
    run_embedded_worker(threads)


# --- demo --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DemoAccess:
    """How to reach the demo tenant."""

    tenant: str
    email: str
    password: str
    write_key: str
    api_token: str


def ensure_demo_tenant(host: PluginHost) -> DemoAccess:
    """Create the demo tenant (or reuse it), enable every working plugin in sandbox mode, seed it."""
    from sqlmodel import select

    from core.cli.plugins import change_plugin, notify_plugin
    from core.db.engines import control_session
    from core.demo import DEMO_EMAIL, DEMO_NAME, DEMO_PASSWORD, DEMO_SLUG
    from core.tenancy import keys
    from core.tenancy.models import Tenant
    from core.tenancy.onboarding import onboard_tenant
    from core.tenancy.plugin_settings import settings_of
    from core.tenancy.roles import Role
    from core.tenancy.users import (
        authenticate,
        create_user,
        get_membership,
        get_user_by_email,
        set_membership,
    )

    with control_session() as session:
        tenant = session.exec(select(Tenant).where(Tenant.slug == DEMO_SLUG)).first()
        if tenant is None:
            new = onboard_tenant(session, DEMO_SLUG, DEMO_EMAIL, DEMO_PASSWORD, name=DEMO_NAME, actor="cli")
            tenant, write_key, api_token = new.tenant, new.write_key, new.api_token
        else:
            user = get_user_by_email(session, DEMO_EMAIL)
            if user is None:
                user = create_user(session, DEMO_EMAIL, DEMO_PASSWORD, name="Demo Admin")
            elif authenticate(session, DEMO_EMAIL, DEMO_PASSWORD) is None:
                warn(
                    f"{DEMO_EMAIL} is disabled or its password was changed; the password shown will not work."
                )
            membership = get_membership(session, user, tenant)
            if membership is None or membership.role != Role.admin:
                set_membership(session, user, tenant, Role.admin)
            stored = next((plain for _, plain in keys.write_keys(session, tenant)), None)
            write_key = stored if stored is not None else keys.issue_write_key(session, tenant)[1]
            _, api_token = keys.issue_api_token(session, tenant, user, name="demo")
        current = settings_of(session, tenant)
        enabled = []
        for name, info in sorted(host.plugins.items()):
            if info.broken:
                warn(f"not enabling broken plugin {name!r}: {info.error}")
            elif not (name in current and current[name].enabled):
                change_plugin(session, tenant, host, name, True, live=False)
                enabled.append(name)
        session.commit()
    for name in enabled:
        problem = notify_plugin(host, name, DEMO_SLUG, True)
        if problem:
            warn(problem)
    return DemoAccess(DEMO_SLUG, DEMO_EMAIL, DEMO_PASSWORD, write_key, api_token)


@handle_errors
def demo(host: HostOption = "127.0.0.1", port: PortOption = 8000, json_output: JsonOption = False) -> None:
    """Set up a demo tenant with sample data and every working plugin in sandbox mode, then serve.

    Prints the URL and how to sign in (with --json: one JSON line first), then serves like `serve`.
    """
    from core.bootstrap import migrate_all
    from core.demo import seed_demo_data
    from core.plugins import get_host

    migrate_all()
    access = ensure_demo_tenant(get_host())
    seed_demo_data(access.tenant)
    url = f"http://{host}:{port}"
    if json_output:
        print_json({"url": url, "email": access.email, "password": access.password, "tenant": access.tenant,
                    "write_key": access.write_key, "api_token": access.api_token})  # fmt: skip
    else:
        print_panel(
            [
                ("URL", url),
                ("Email", access.email),
                ("Password", access.password),
                ("Tenant", access.tenant),
                ("Write key", access.write_key),
                ("API token", access.api_token),
            ],
            title="Tessera demo",
            note="Plugins run in sandbox mode: nothing leaves this machine. Ctrl-C stops the server.",
        )
    run_server(host, port)


def register(app: typer.Typer) -> None:
    """Add the commands of this module to the top-level app."""
    app.command("migrate")(migrate)
    app.command("serve")(serve)
    app.command("worker")(worker)
    app.command("demo")(demo)
