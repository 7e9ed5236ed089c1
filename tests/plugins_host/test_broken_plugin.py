"""A plugin that cannot load is kept as broken, with its reason, and the core keeps running.

First with a real package (``tessera-broken-channel``, raising at import) installed at test
time; then with in-memory plugin objects for each way a plugin can be refused at start-up.
"""

from __future__ import annotations

import html
import json
import subprocess
from collections.abc import Callable

import pytest

from core.db.engines import control_session
from core.plugin_api import Channel, EmptyConfig, JobType, UIPanel, hookimpl
from core.plugins import PluginHost, get_host
from core.tenancy.errors import TenancyError
from core.tenancy.plugin_settings import set_enabled, settings_of
from core.tenancy.tenants import get_tenant
from tests.plugins_host.packages import TESSERA, subprocess_env
from tests.support import bearer, login

BROKEN = "broken_channel"
IMPORT_ERROR = "tessera-broken-channel cannot start: the provider SDK 'samplesdk' is not installed"


# --- the installed broken package --------------------------------------------------------------
def test_the_broken_package_is_kept_with_its_import_error(sqlite_installation, broken_plugin) -> None:
    host = get_host()
    info = host.plugins[BROKEN]
    assert info.broken
    assert info.distribution == "tessera-broken-channel" and info.version == "0.0.1"
    assert (info.error or "").startswith("failed to import tessera_broken_channel: RuntimeError(")
    assert IMPORT_ERROR in (info.error or "")
    assert info.channels == []
    assert BROKEN not in host.working()
    assert not [r for r in host.channels.values() if r.plugin == BROKEN]
    # The other plugins load and register as usual, the third-party one included.
    assert "sample_channel" in host.working() and "sample_channel" in host.channels
    assert [name for name in host.working() if host.plugins[name].broken] == []
    assert len(host.working()) >= 2


def test_the_cli_lists_it_broken_with_its_error(sqlite_installation, broken_plugin) -> None:
    result = subprocess.run(
        [TESSERA, "plugins", "list", "--json"],
        env=subprocess_env(sqlite_installation.env), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    listed = {p["name"]: p for p in json.loads(result.stdout)}
    assert listed[BROKEN]["status"] == "broken"
    assert IMPORT_ERROR in listed[BROKEN]["error"]
    assert listed[BROKEN]["distribution"] == "tessera-broken-channel"
    assert listed["sample_channel"]["status"] == "ok" and listed["sample_channel"]["error"] is None


def test_the_cli_refuses_to_enable_it(sqlite_installation, broken_plugin) -> None:
    sqlite_installation.tenant("acme")
    result = subprocess.run(
        [TESSERA, "plugins", "enable", BROKEN, "--tenant", "acme"],
        env=subprocess_env(sqlite_installation.env), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]  # logs go there too
    assert len(errors) == 1, result.stderr
    assert f"Plugin '{BROKEN}' is broken and cannot be enabled" in errors[0] and IMPORT_ERROR in errors[0]


def test_the_settings_page_shows_it_broken_with_the_error(installation, broken_plugin) -> None:
    installation.tenant("acme")
    with installation.client() as client:
        login(client, "admin@acme.test")
        page = client.get("/t/acme/settings/plugins")
    assert page.status_code == 200
    section = page.text.split(f'id="plugin-{BROKEN}"', 1)[1].split("</section>", 1)[0]
    assert '<span class="badge error">broken</span>' in section
    assert IMPORT_ERROR in html.unescape(section)
    assert "Enable" not in section  # no button to enable a plugin that cannot load
    working = page.text.split('id="plugin-sample_channel"', 1)[1].split("</section>", 1)[0]
    assert "broken" not in working and "Enable (sandbox mode)" in working


def test_healthz_stays_up_and_lists_it(installation, broken_plugin) -> None:
    with installation.client() as client:
        answer = client.get("/healthz")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ok"
    assert IMPORT_ERROR in body["plugins"]["broken"][BROKEN]
    assert BROKEN not in body["plugins"]["ok"] and "sample_channel" in body["plugins"]["ok"]


def test_enabling_it_is_refused_with_a_clear_message(installation, broken_plugin) -> None:
    created = installation.tenant("acme")
    host = get_host()
    with control_session() as session:
        tenant = get_tenant(session, "acme")
        with pytest.raises(
            TenancyError, match=f"Plugin '{BROKEN}' is broken and cannot be enabled"
        ) as refused:
            set_enabled(session, tenant, host, BROKEN, True)
        assert IMPORT_ERROR in str(refused.value)
        session.rollback()
    with installation.client() as client:
        answer = client.post(f"/api/v1/plugins/{BROKEN}/enable", headers=bearer(created.api_token))
        assert answer.status_code == 400
        assert "is broken and cannot be enabled" in answer.json()["detail"]
        listed = {
            p["name"]: p for p in client.get("/api/v1/plugins", headers=bearer(created.api_token)).json()
        }
    assert listed[BROKEN]["enabled"] is False and listed[BROKEN]["status"] == "broken"
    with control_session() as session:
        row = settings_of(session, get_tenant(session, "acme")).get(BROKEN)
    assert row is None or not row.enabled


# --- in-memory plugins refused by the host -----------------------------------------------------
class GoodChannel(Channel):
    key = "good"
    label = "Good"


class ChannelWithOpenConfig(Channel):
    class Config(EmptyConfig):
        model_config = {"extra": "ignore"}

    key = "open_config"
    label = "Open config"


def _panel(key: str) -> UIPanel:
    return UIPanel(key=key, label=key, location="dashboard", render=lambda tenant, context: "")


class Good:
    @hookimpl
    def register_channels(self, register: Callable) -> None:
        register(GoodChannel())

    @hookimpl
    def register_jobs(self, register: Callable) -> None:
        register(JobType(key="good.job", handler=lambda tenant, payload: None))


class DuplicateKey:
    """Registers a job (accepted on its own) and a channel whose key another plugin already owns."""

    @hookimpl
    def register_jobs(self, register: Callable) -> None:
        register(JobType(key="dup.job", handler=lambda tenant, payload: None))

    @hookimpl
    def register_channels(self, register: Callable) -> None:
        register(GoodChannel())


class OpenConfig:
    @hookimpl
    def register_channels(self, register: Callable) -> None:
        register(ChannelWithOpenConfig())


class RaisesWhileRegistering:
    """Registers a valid channel, then fails: what it registered must not stay."""

    calls: list[str]

    def __init__(self) -> None:
        self.calls = []

    @hookimpl
    def register_channels(self, register: Callable) -> None:
        class Partial(Channel):
            key = "partial"
            label = "Partial"

        register(Partial())
        raise RuntimeError("provider catalogue unreachable")

    @hookimpl
    def register_ui_panels(self, register: Callable) -> None:
        register(_panel("partial.panel"))

    @hookimpl
    def on_profile_changed(self, tenant, profile, changed) -> None:
        self.calls.append(tenant)


class UnknownArgument:
    @hookimpl
    def on_profile_changed(self, tenant, profile, changed, campaign) -> None:
        raise AssertionError("never called")


class UnknownHook:
    @hookimpl
    def on_profile_deleted(self, tenant) -> None:
        raise AssertionError("never called")


def _contributions(host: PluginHost, plugin: str) -> list[str]:
    stores = (host.channels, host.identifier_types, host.segment_conditions, host.ui_panels, host.jobs)
    owned = [key for store in stores for key, r in store.items() if r.plugin == plugin]
    return owned + [f"router of {r.plugin}" for r in host.routers if r.plugin == plugin]


@pytest.fixture
def host() -> PluginHost:
    host = PluginHost()
    assert not host.add(Good(), "good").broken
    return host


def test_a_duplicate_channel_key_breaks_the_second_plugin_only(host: PluginHost) -> None:
    info = host.add(DuplicateKey(), "dup")
    assert info.broken
    assert info.name == "dup"
    assert "raised while registering" in (info.error or "")
    assert "channel 'good' is already registered by good" in (info.error or "")
    assert _contributions(host, "dup") == []  # its job type, accepted first, is gone too
    assert host.channels["good"].plugin == "good" and "good.job" in host.jobs
    assert host.working() == ["good"]


def test_a_config_without_extra_forbid_breaks_the_plugin(host: PluginHost) -> None:
    info = host.add(OpenConfig(), "open")
    assert info.broken
    assert "ChannelWithOpenConfig.Config must forbid unknown fields (extra='forbid')" in (info.error or "")
    assert _contributions(host, "open") == [] and "open_config" not in host.channels


def test_raising_inside_register_channels_breaks_the_plugin_and_keeps_nothing(host: PluginHost) -> None:
    plugin = RaisesWhileRegistering()
    info = host.add(plugin, "flaky")
    assert info.broken
    assert info.error == "raised while registering: RuntimeError('provider catalogue unreachable')"
    assert _contributions(host, "flaky") == []
    assert info.channels == []
    assert not host.pm.is_registered(plugin)
    # Even a tenant that lists it as enabled never reaches its on_* hooks.
    host.hooks_for({"good", "flaky"}).on_profile_changed(tenant="acme", profile=None, changed=[])
    assert plugin.calls == []
    assert host.channels_for({"good", "flaky"}) == {"good": host.channels["good"].item}


def test_a_hook_with_an_unknown_argument_breaks_the_plugin(host: PluginHost) -> None:
    info = host.add(UnknownArgument(), "extra_arg")
    assert info.broken
    assert (info.error or "").startswith("does not fit the hook specs:")
    assert "campaign" in (info.error or "")
    assert "extra_arg" not in dict(host.pm.list_name_plugin())
    assert host.working() == ["good"]


def test_a_hook_the_specs_do_not_know_breaks_the_plugin(host: PluginHost) -> None:
    info = host.add(UnknownHook(), "unknown_hook")
    assert info.broken
    assert (info.error or "").startswith("does not fit the hook specs:")
    assert "on_profile_deleted" in (info.error or "")
    assert "unknown_hook" not in dict(host.pm.list_name_plugin())


def test_a_broken_plugin_cannot_be_enabled_even_in_memory(sqlite_installation, host: PluginHost) -> None:
    host.add(OpenConfig(), "open")
    sqlite_installation.tenant("acme")
    with control_session() as session:
        with pytest.raises(TenancyError, match="Plugin 'open' is broken and cannot be enabled: raised while"):
            set_enabled(session, get_tenant(session, "acme"), host, "open", True)
        assert set_enabled(session, get_tenant(session, "acme"), host, "good", True).enabled
