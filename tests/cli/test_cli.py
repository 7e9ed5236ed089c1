"""The ``tessera`` command line, run in-process with typer's CliRunner on a fresh data folder."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import types

import pytest
from sqlmodel import select
from typer.testing import CliRunner

import core.plugins
from core.audit.models import AuditEntry
from core.cli import app, main
from core.db.engines import control_session, dispose_engines
from core.plugin_api import hookimpl
from core.plugins import PluginHost
from core.settings import reset_settings

runner = CliRunner()
PASSWORD = "secret123"


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    """Each test gets its own embedded installation (settings and engines are cached per process)."""
    monkeypatch.setenv("TESSERA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TESSERA_DATABASE_URL", raising=False)
    monkeypatch.delenv("TESSERA_REDIS_URL", raising=False)
    reset_settings()
    dispose_engines()
    yield tmp_path / "data"
    dispose_engines()
    reset_settings()


class Recorder:
    """A plugin that remembers the enable/disable hooks it got."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    @hookimpl
    def on_plugin_enabled(self, tenant: str) -> None:
        self.calls.append(("enabled", tenant))

    @hookimpl
    def on_plugin_disabled(self, tenant: str) -> None:
        self.calls.append(("disabled", tenant))


class Broken:
    """A plugin whose registration fails."""

    @hookimpl
    def register_channels(self, register):
        raise RuntimeError("boom at start-up")


@pytest.fixture
def fake_host(monkeypatch):
    """A plugin host with two working plugins and a broken one, instead of the installed plugins."""
    host = PluginHost()
    plugins = {"alpha": Recorder(), "beta": Recorder()}
    for name, plugin in plugins.items():
        host.add(plugin, name)
    host.add(Broken(), "gamma")
    monkeypatch.setattr(core.plugins, "_host", host)
    return plugins


def invoke(*args: str):
    return runner.invoke(app, list(args))


def create(slug: str = "acme", email: str = "admin@acme.test", *extra: str):
    return invoke("tenant", "create", slug, "--admin-email", email, "--admin-password", PASSWORD, *extra)


def assert_error(result, code: int, text: str) -> None:
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not a traceback
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert text in lines[0]


def audit_actions() -> list[tuple[str, str, str]]:
    with control_session() as session:
        entries = session.exec(select(AuditEntry).order_by(AuditEntry.id))
        return [(e.actor, e.action, e.target) for e in entries]


def plugins_of(tenant: str) -> dict[str, dict]:
    result = invoke("plugins", "list", "--tenant", tenant, "--json")
    assert result.exit_code == 0, result.output
    return {p["name"]: p for p in json.loads(result.stdout)}


COMMANDS = [
    [],
    ["migrate"],
    ["serve"],
    ["worker"],
    ["demo"],
    ["tenant"],
    ["tenant", "create"],
    ["tenant", "list"],
    ["plugins"],
    ["plugins", "list"],
    ["plugins", "enable"],
    ["plugins", "disable"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "tessera")
def test_every_command_has_help(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage: tessera" in result.stdout
    assert "--help" in result.stdout


def test_tenant_create_json_gives_tenant_write_key_and_token(data_dir):
    result = create("acme", "admin@acme.test", "--name", "Acme Inc", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"tenant", "write_key", "api_token"}
    assert data["tenant"]["slug"] == "acme"
    assert data["tenant"]["name"] == "Acme Inc"
    assert data["tenant"]["database"] == "acme.db"
    assert data["tenant"]["created_at"].startswith("20")
    assert data["write_key"].startswith("wk_")
    assert data["api_token"].startswith("tsr_")
    assert (data_dir / "tenants" / "acme.db").exists()
    assert ("cli", "tenant.create", "acme") in audit_actions()


def test_tenant_create_for_people_shows_the_credentials():
    result = create("acme")
    assert result.exit_code == 0, result.output
    assert "wk_" in result.stdout and "tsr_" in result.stdout


def test_duplicate_slug_is_refused():
    assert create("acme").exit_code == 0
    assert_error(create("acme"), 2, "already exists")


def test_malformed_slug_is_refused():
    assert_error(create("Bad Slug!"), 2, "Invalid tenant slug")


def test_short_password_and_wrong_password_are_refused():
    result = invoke("tenant", "create", "acme", "--admin-email", "a@b.co", "--admin-password", "short")
    assert_error(result, 2, "at least 8 characters")
    assert create("acme", "a@b.co").exit_code == 0
    result = invoke("tenant", "create", "beta", "--admin-email", "a@b.co", "--admin-password", "not-theirs")
    assert_error(result, 2, "password given is not theirs")


def test_tenant_list_json_includes_created_tenants():
    result = invoke("tenant", "list", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
    assert create("acme", "a@b.co").exit_code == 0
    assert create("beta-shop", "a@b.co", "--name", "Beta Shop").exit_code == 0
    result = invoke("tenant", "list", "--json")
    assert result.exit_code == 0, result.output
    tenants = json.loads(result.stdout)
    assert [t["slug"] for t in tenants] == ["acme", "beta-shop"]
    assert tenants[1]["name"] == "Beta Shop"
    assert set(tenants[0]) == {"slug", "name", "database", "created_at"}
    table = invoke("tenant", "list")
    assert table.exit_code == 0 and "beta-shop" in table.stdout


def test_migrate_json_reports_the_databases():
    assert create("acme").exit_code == 0
    result = invoke("migrate", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["control"].startswith("sqlite:///") and report["tenants"] == ["acme"]


def test_plugins_list_json_with_installed_plugins():
    result = invoke("plugins", "list", "--json")
    assert result.exit_code == 0, result.output
    plugins = json.loads(result.stdout)
    assert isinstance(plugins, list)
    for plugin in plugins:
        assert {"name", "distribution", "version", "status", "error", "channels"} <= set(plugin)
        assert plugin["status"] in ("ok", "broken")


def test_plugins_list_shows_broken_plugins_with_their_error(fake_host):
    result = invoke("plugins", "list", "--json")
    assert result.exit_code == 0, result.output
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert plugins["alpha"]["status"] == "ok" and plugins["alpha"]["error"] is None
    assert plugins["gamma"]["status"] == "broken"
    assert "boom at start-up" in plugins["gamma"]["error"]
    table = invoke("plugins", "list")
    assert table.exit_code == 0, table.output
    assert "broken" in table.stdout and "gamma" in table.stdout


def test_plugins_enable_unknown_plugin_is_refused(fake_host):
    assert create("acme").exit_code == 0
    assert_error(invoke("plugins", "enable", "nope", "--tenant", "acme"), 2, "Unknown plugin")


def test_plugins_enable_broken_plugin_or_unknown_tenant_is_refused(fake_host):
    assert create("acme").exit_code == 0
    assert_error(invoke("plugins", "enable", "gamma", "--tenant", "acme"), 2, "is broken")
    assert_error(invoke("plugins", "enable", "alpha", "--tenant", "nope"), 2, "Unknown tenant")
    assert_error(invoke("plugins", "list", "--tenant", "nope"), 2, "Unknown tenant")


def test_plugins_enable_and_disable_call_that_plugins_hook_and_audit(fake_host):
    assert create("acme").exit_code == 0
    result = invoke("plugins", "enable", "alpha", "--tenant", "acme", "--live", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"plugin": "alpha", "tenant": "acme", "enabled": True, "mode": "live"}
    assert fake_host["alpha"].calls == [("enabled", "acme")]
    assert fake_host["beta"].calls == []

    listed = plugins_of("acme")
    assert (listed["alpha"]["enabled"], listed["alpha"]["mode"]) == (True, "live")
    assert (listed["beta"]["enabled"], listed["beta"]["mode"]) == (False, "sandbox")

    result = invoke("plugins", "disable", "alpha", "--tenant", "acme")
    assert result.exit_code == 0, result.output
    assert fake_host["alpha"].calls == [("enabled", "acme"), ("disabled", "acme")]
    assert fake_host["beta"].calls == []
    actions = audit_actions()
    assert ("cli", "plugin.enable", "alpha") in actions
    assert ("cli", "plugin.disable", "alpha") in actions


def test_a_failing_hook_keeps_the_change_and_exits_1(fake_host, monkeypatch):
    def explode(tenant):
        raise RuntimeError("hook exploded")

    host = core.plugins.get_host()
    impl = next(i for i in host.pm.hook.on_plugin_enabled.get_hookimpls() if i.plugin_name == "alpha")
    monkeypatch.setattr(impl, "function", explode)
    assert create("acme").exit_code == 0
    result = invoke("plugins", "enable", "alpha", "--tenant", "acme")
    assert result.exit_code == 1
    assert "hook exploded" in result.stderr
    listed = plugins_of("acme")
    assert listed["alpha"]["enabled"] is True


def test_demo_creates_then_reuses_the_demo_tenant_and_serves(fake_host, monkeypatch):
    served = []
    monkeypatch.setattr("core.cli.server.run_server", lambda host, port, reload=False: served.append(port))
    first = invoke("demo", "--port", "8123", "--json")
    assert first.exit_code == 0, first.output
    lines = first.stdout.strip().splitlines()
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert set(data) == {"url", "email", "password", "tenant", "write_key", "api_token"}
    assert data["url"] == "http://127.0.0.1:8123"
    assert (data["email"], data["password"], data["tenant"]) == ("demo@tessera.local", "tessera-demo", "demo")
    assert served == [8123]
    assert "gamma" in first.stderr  # the broken plugin is skipped with a warning
    assert fake_host["alpha"].calls == fake_host["beta"].calls == [("enabled", "demo")]

    listed = plugins_of("demo")
    assert listed["alpha"]["enabled"] and listed["alpha"]["mode"] == "sandbox"
    assert not listed["gamma"]["enabled"]
    tenants = json.loads(invoke("tenant", "list", "--json").stdout)
    assert [(t["slug"], t["name"]) for t in tenants] == [("demo", "Demo Retail")]

    second = invoke("demo", "--json")
    assert second.exit_code == 0, second.output
    again = json.loads(second.stdout.strip().splitlines()[0])
    assert again["write_key"] == data["write_key"]
    assert again["api_token"].startswith("tsr_") and again["api_token"] != data["api_token"]
    assert fake_host["alpha"].calls == [("enabled", "demo")]  # already enabled: not enabled again
    people = invoke("demo")
    assert people.exit_code == 0 and "tessera-demo" in people.stdout


def test_seed_demo_data_needs_the_tenant_and_is_repeatable():
    from core.bootstrap import migrate_all
    from core.demo import seed_demo_data
    from core.tenancy.errors import NotFound

    migrate_all()
    with pytest.raises(NotFound):
        seed_demo_data("demo")
    assert create("demo").exit_code == 0
    seed_demo_data("demo")
    seed_demo_data("demo")
    from sqlmodel import Session

    from core.db.engines import tenant_database_name, tenant_engine
    from core.segments.service import active_segments

    with Session(tenant_engine(tenant_database_name("demo"))) as session:
        sizes = {s.name: s.size for s in active_segments(session)}
    assert len(sizes) == 5 and all(size is not None for size in sizes.values())  # created once, evaluated
    assert 0 < sizes["French, reachable on WhatsApp or push"] < sizes["French customers"] < 120


class FakeWorker:
    instances: list[FakeWorker] = []

    def __init__(self, threads=None):
        self.threads = threads
        self.events: list[str] = []
        self.started = threading.Event()
        FakeWorker.instances.append(self)

    def start(self):
        self.events.append("start")
        self.started.set()

    def stop(self):
        self.events.append("stop")


@pytest.fixture
def fake_worker(monkeypatch):
    """Stands in for ``core.queue.worker`` so no broker or dramatiq worker is made."""
    FakeWorker.instances = []
    monkeypatch.setitem(sys.modules, "core.queue.worker", types.SimpleNamespace(InProcessWorker=FakeWorker))
    return FakeWorker.instances


def test_serve_runs_uvicorn_with_an_in_process_worker(fake_worker, monkeypatch):
    app_object = object()
    monkeypatch.setitem(sys.modules, "web.app", types.SimpleNamespace(create_app=lambda: app_object))
    calls = []

    def fake_run(app, **kwargs):
        calls.append((app, kwargs))
        assert fake_worker[0].events == ["start"]

    monkeypatch.setattr("uvicorn.run", fake_run)
    result = invoke("serve", "--port", "8124")
    assert result.exit_code == 0, result.output
    assert calls[0][0] is app_object
    assert (calls[0][1]["host"], calls[0][1]["port"]) == ("127.0.0.1", 8124)
    assert fake_worker[0].events == ["start", "stop"]


def test_serve_refuses_several_processes_on_the_embedded_default(fake_worker, monkeypatch):
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: pytest.fail("must not serve"))
    result = invoke("serve", "--workers", "2")
    assert result.exit_code != 0
    assert "need PostgreSQL and Redis" in " ".join(result.output.replace("│", " ").split())
    assert fake_worker == []


def test_worker_runs_in_process_until_sigterm(fake_worker):
    def terminate():
        # Signal even if the worker has not started yet: the assertions then fail instead of hanging.
        deadline = time.monotonic() + 60
        while not fake_worker and time.monotonic() < deadline:
            time.sleep(0.05)
        if fake_worker:
            fake_worker[0].started.wait(max(0.0, deadline - time.monotonic()))
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    killer = threading.Thread(target=lambda: (threading.Event().wait(0.2), terminate()))
    killer.start()
    result = invoke("worker", "--threads", "3")
    killer.join()
    assert result.exit_code == 0, result.output
    assert fake_worker[0].threads == 3
    assert fake_worker[0].events == ["start", "stop"]
    assert signal.getsignal(signal.SIGTERM) is previous


def test_main_reports_invalid_settings_in_one_line(monkeypatch, capsys):
    monkeypatch.setenv("TESSERA_WORKER_THREADS", "0")
    monkeypatch.setattr(sys, "argv", ["tessera", "tenant", "list"])
    reset_settings()
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: invalid settings: TESSERA_WORKER_THREADS")
