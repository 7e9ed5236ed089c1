"""A third-party plugin package, installed at test time, is discovered and used per tenant only.

``tessera-sample-channel`` (``tests/plugins_host/sample_plugin``) is pip-installed into a folder
of its own and put on ``sys.path``; nothing in the core names it. It is enabled for tenant A
only, and everything it contributes (channel, hooks, routes, panels) must reach A and never B.
"""

from __future__ import annotations

import importlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.db.engines import control_session
from core.plugin_api import Channel, ProfileSnapshot
from core.plugins import get_host
from core.tenancy.plugin_settings import enabled_plugins, set_enabled
from core.tenancy.tenants import get_tenant
from tests.plugins_host.packages import TESSERA, subprocess_env
from tests.support import bearer, login

PLUGIN = "sample_channel"
A, B = "tenant-a", "tenant-b"


@dataclass
class Setup:
    """Two tenants, the sample plugin enabled for A only, and a client of a freshly built app."""

    installation: Any
    tokens: dict[str, str]
    client: TestClient
    module: ModuleType


def enabled_of(slug: str) -> set[str]:
    with control_session() as session:
        return enabled_plugins(session, get_tenant(session, slug), get_host())


@pytest.fixture
def setup(installation, sample_plugin) -> Iterator[Setup]:
    tokens = {slug: installation.tenant(slug).api_token for slug in (A, B)}
    host = get_host()
    with control_session() as session:
        set_enabled(session, get_tenant(session, A), host, PLUGIN, True)
        session.commit()
    module = importlib.import_module("tessera_sample_channel")
    module.PROFILE_CHANGES.clear()
    module.ENABLED_FOR.clear()
    with installation.client() as client:
        yield Setup(installation, tokens, client, module)


def test_the_installed_package_is_discovered_with_everything_it_registers(
    installation, sample_plugin
) -> None:
    host = get_host()
    info = host.plugins[PLUGIN]
    assert not info.broken, info.error
    assert (info.distribution, info.version) == ("tessera-sample-channel", "0.1.0")
    assert info.channels == [PLUGIN]
    channel = host.channels[PLUGIN]
    assert channel.plugin == PLUGIN and isinstance(channel.item, Channel)
    assert channel.item.label == "Sample channel"
    assert host.jobs["sample_channel.touch"].plugin == PLUGIN
    assert host.ui_panels["sample_channel.status"].item.location == "dashboard"
    assert [r.plugin for r in host.routers].count(PLUGIN) == 1
    # It came from the folder pip installed it into, not from the source tree of the tests.
    module = importlib.import_module("tessera_sample_channel")
    assert str(sample_plugin) in str(module.__file__)
    # The plugins installed with Tessera are still there and working.
    assert PLUGIN in host.working() and len(host.working()) > 1


def test_the_api_shows_it_enabled_for_a_only(setup: Setup) -> None:
    def listed(slug: str) -> dict:
        answer = setup.client.get("/api/v1/plugins", headers=bearer(setup.tokens[slug]))
        assert answer.status_code == 200, answer.text
        return {p["name"]: p for p in answer.json()}[PLUGIN]

    a, b = listed(A), listed(B)
    assert a["status"] == b["status"] == "ok"
    assert a["enabled"] is True and a["mode"] == "sandbox"
    assert b["enabled"] is False
    assert a["distribution"] == "tessera-sample-channel" and a["channels"] == [PLUGIN]


def test_channels_and_hooks_reach_the_enabling_tenant_only(setup: Setup) -> None:
    host = get_host()
    enabled_a, enabled_b = enabled_of(A), enabled_of(B)
    assert PLUGIN in enabled_a and PLUGIN not in enabled_b
    assert PLUGIN in host.channels_for(enabled_a)
    assert PLUGIN not in host.channels_for(enabled_b)

    profile = ProfileSnapshot(id="p-1", traits={"first_name": "Ada"})
    host.hooks_for(enabled_b).on_profile_changed(tenant=B, profile=profile, changed=["first_name"])
    assert setup.module.PROFILE_CHANGES == []
    host.hooks_for(enabled_a).on_profile_changed(tenant=A, profile=profile, changed=["first_name"])
    assert setup.module.PROFILE_CHANGES == [(A, "p-1", ["first_name"])]


def test_its_routes_answer_for_the_enabling_tenant_only(setup: Setup) -> None:
    answer = setup.client.get(f"/x/{A}/{PLUGIN}/ping")
    assert answer.status_code == 200 and answer.json() == {"tenant": A}
    assert setup.client.get(f"/x/{B}/{PLUGIN}/ping").status_code == 404
    assert setup.client.get(f"/x/no-such-tenant/{PLUGIN}/ping").status_code == 404
    # Its sandbox (the fake provider) likewise.
    message = {"to": "ada@example.com", "text": "hi"}
    auth = {"Authorization": "Bearer sk-test"}
    sent = setup.client.post(f"/sandbox/{A}/{PLUGIN}/messages", json=message, headers=auth)
    assert sent.status_code == 200 and sent.json()["id"].startswith("sample-")
    assert setup.client.post(f"/sandbox/{B}/{PLUGIN}/messages", json=message, headers=auth).status_code == 404


def test_its_dashboard_panel_shows_on_the_enabling_tenant_only(setup: Setup) -> None:
    marker = "data-plugin='sample_channel'"
    login(setup.client, f"admin@{A}.test")
    page = setup.client.get(f"/t/{A}/")
    assert page.status_code == 200
    assert marker in page.text and f"Sample channel is ready for {A}." in page.text

    with setup.installation.client() as other:
        login(other, f"admin@{B}.test")
        page = other.get(f"/t/{B}/")
        assert page.status_code == 200
        assert marker not in page.text and "Sample channel" not in page.text


def test_enabling_through_the_api_calls_on_plugin_enabled_for_that_tenant(setup: Setup) -> None:
    answer = setup.client.post(f"/api/v1/plugins/{PLUGIN}/enable", headers=bearer(setup.tokens[B]))
    assert answer.status_code == 200, answer.text
    assert answer.json()["enabled"] is True
    assert setup.module.ENABLED_FOR == [B]
    assert setup.client.get(f"/x/{B}/{PLUGIN}/ping").json() == {"tenant": B}


def test_its_config_keeps_the_api_key_secret_and_refuses_unknown_fields(setup: Setup) -> None:
    headers = bearer(setup.tokens[A])
    url = f"/api/v1/channels/{PLUGIN}/config"
    saved = setup.client.put(url, json={"api_key": "sk-live-123", "sender": "Acme"}, headers=headers)
    assert saved.status_code == 200, saved.text
    assert saved.json() == {"api_key": "**********", "sender": "Acme"}
    refused = setup.client.put(url, json={"api_key": "x", "region": "eu"}, headers=headers)
    assert refused.status_code == 422
    assert "region" in refused.json()["detail"]["problems"]


def test_the_cli_lists_it_enabled_for_the_tenant(setup: Setup) -> None:
    env = subprocess_env(setup.installation.env)
    for slug, enabled in ((A, True), (B, False)):
        result = subprocess.run(
            [TESSERA, "plugins", "list", "--tenant", slug, "--json"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        listed = {p["name"]: p for p in json.loads(result.stdout)}
        assert listed[PLUGIN]["status"] == "ok"
        assert listed[PLUGIN]["enabled"] is enabled
        assert listed[PLUGIN]["distribution"] == "tessera-sample-channel"
        assert listed[PLUGIN]["channels"] == [PLUGIN]


def test_processing_events_tells_the_enabling_tenants_plugin_which_profiles_changed(setup: Setup) -> None:
    from sqlmodel import Session

    from core.db.engines import tenant_engine
    from core.ingest.service import accept
    from core.profiles.jobs import process_events

    event = {"type": "identify", "userId": "u-ada", "traits": {"email": "ada@example.com", "name": "Ada"}}
    for slug in (A, B):
        with control_session() as control:
            database = get_tenant(control, slug).database
        with Session(tenant_engine(database)) as session:
            assert accept(session, slug, [event]).accepted == 1
        process_events(slug, {})
    [(tenant, profile_id, changed)] = setup.module.PROFILE_CHANGES
    assert (tenant, changed) == (A, ["profile"]) and profile_id.startswith("p_")


def test_its_segment_condition_type_is_offered_to_the_enabling_tenant_only(setup: Setup) -> None:
    from sqlmodel import Session

    from core.db.engines import tenant_engine
    from core.ingest.service import accept
    from core.profiles.jobs import process_events
    from core.segments.jobs import refresh_segments

    ids = {}
    for slug in (A, B):
        with control_session() as control:
            database = get_tenant(control, slug).database
        with Session(tenant_engine(database)) as session:
            people = [
                {"type": "identify", "userId": user, "traits": {"plan": "pro"}} for user in ("ada", "bo")
            ]
            assert accept(session, slug, people).accepted == 2
        process_events(slug, {})
        found = setup.client.get(
            "/api/v1/profiles?identifier=user_id:ada", headers=bearer(setup.tokens[slug])
        )
        ids[slug] = found.json()["id"]
    on_list = {"type": f"{PLUGIN}.on_list", "params": {"profile_ids": [ids[A]]}}
    count = setup.client.post(
        "/api/v1/segments/count", json={"rule": on_list}, headers=bearer(setup.tokens[A])
    )
    assert count.status_code == 200 and count.json()["count"] == 1
    refused = setup.client.post(
        "/api/v1/segments/count", json={"rule": on_list}, headers=bearer(setup.tokens[B])
    )
    assert refused.status_code == 422 and "unknown condition type" in refused.text
    bad = {"type": f"{PLUGIN}.on_list", "params": {"profile_ids": []}}
    invalid = setup.client.post("/api/v1/segments/count", json={"rule": bad}, headers=bearer(setup.tokens[A]))
    assert invalid.status_code == 422 and invalid.json()["problems"][0]["path"] == "params.profile_ids"

    # Saved, evaluated in batch (to_sql), then decided in real time (evaluate) after a change.
    rule = {"all": [on_list, {"type": "trait", "key": "plan", "op": "=", "value": "pro"}]}
    created = setup.client.post("/api/v1/segments", json={"name": "Listed pros", "rule": rule},
                                headers=bearer(setup.tokens[A])).json()  # fmt: skip
    refresh_segments(A, {"segment_id": created["id"]})
    members = f"/api/v1/segments/{created['id']}/members"
    listed = setup.client.get(members, headers=bearer(setup.tokens[A])).json()["members"]
    assert [m["profile_id"] for m in listed] == [ids[A]]
    with control_session() as control:
        database = get_tenant(control, A).database
    with Session(tenant_engine(database)) as session:
        assert (
            accept(session, A, [{"type": "identify", "userId": "ada", "traits": {"plan": "free"}}]).accepted
            == 1
        )
    process_events(A, {})
    assert setup.client.get(members, headers=bearer(setup.tokens[A])).json()["members"] == []

    # Disabled later: the segment's rule no longer holds; it is said so, and evaluation skips it.
    with control_session() as control:
        set_enabled(control, get_tenant(control, A), get_host(), PLUGIN, False)
        control.commit()
    stale = setup.client.get(f"/api/v1/segments/{created['id']}/count", headers=bearer(setup.tokens[A]))
    assert stale.status_code == 409 and "no longer valid" in stale.text
    refresh_segments(A, {})
    refresh_segments(A, {"segment_id": created["id"]})
