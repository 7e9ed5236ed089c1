"""Tenant isolation: what one tenant writes, another tenant never sees, by API or UI.

Two tenants, ``acme`` and ``globex``, each with its own admin. ``acme`` enables the installed
``push_fcm`` plugin, configures it, sends traffic to its sandbox, creates tokens and queues a
job; ``globex`` must see none of it, on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session, func, select
from tessera_push_fcm.testkeys import test_service_account

from core.db.engines import control_engine, tenant_engine
from core.queue.models import Job
from core.queue.outbox import add_job
from core.tenancy.onboarding import NewTenant
from tests.support import bearer, login

SERVICE_ACCOUNT = json.dumps(
    {
        "client_email": "push@acme-app.iam.gserviceaccount.com",
        "private_key": test_service_account()["private_key"],
    }
)
FCM_CONFIG = {"project_id": "acme-app-b5ae1", "service_account_json": SERVICE_ACCOUNT}
SEND_PATH = "/v1/projects/p/messages:send"


@pytest.fixture
def tenants(installation) -> tuple[NewTenant, NewTenant]:
    """Two tenants with separate admins."""
    return installation.tenant("acme"), installation.tenant("globex")


@pytest.fixture
def api(installation) -> TestClient:
    """A client for bearer-token API calls (no session cookie)."""
    return installation.client()


def acme_sets_up_push_fcm(api: TestClient, acme: NewTenant) -> None:
    """acme enables push_fcm, saves its config and sends one request to its sandbox."""
    enabled = api.post("/api/v1/plugins/push_fcm/enable", headers=bearer(acme.api_token))
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["enabled"] is True
    saved = api.put("/api/v1/channels/push_fcm/config", json=FCM_CONFIG, headers=bearer(acme.api_token))
    assert saved.status_code == 200, saved.text
    sent = api.post(f"/sandbox/acme/push_fcm{SEND_PATH}", json={"message": {}}, headers=bearer("x"))
    assert sent.status_code == 401  # the fake FCM answered (no token it issued), and was recorded


def plugin_state(api: TestClient, token: str, name: str) -> dict:
    listing = api.get("/api/v1/plugins", headers=bearer(token))
    assert listing.status_code == 200, listing.text
    return next(p for p in listing.json() if p["name"] == name)


def test_enabling_and_configuring_a_plugin_stays_in_its_tenant(api, tenants) -> None:
    acme, globex = tenants
    acme_sets_up_push_fcm(api, acme)

    assert plugin_state(api, acme.api_token, "push_fcm")["enabled"] is True
    assert plugin_state(api, globex.api_token, "push_fcm")["enabled"] is False

    acme_config = api.get("/api/v1/channels/push_fcm/config", headers=bearer(acme.api_token))
    assert acme_config.json()["project_id"] == "acme-app-b5ae1"
    globex_config = api.get("/api/v1/channels/push_fcm/config", headers=bearer(globex.api_token))
    assert globex_config.status_code == 200
    assert globex_config.json() == {}


def test_sandbox_traffic_is_recorded_only_for_the_tenant_that_sent_it(api, tenants) -> None:
    acme, globex = tenants
    acme_sets_up_push_fcm(api, acme)

    seen_by_acme = api.get("/api/v1/sandbox/requests?channel=push_fcm", headers=bearer(acme.api_token))
    assert [(r["method"], r["path"]) for r in seen_by_acme.json()] == [("POST", SEND_PATH)]
    seen_by_globex = api.get("/api/v1/sandbox/requests?channel=push_fcm", headers=bearer(globex.api_token))
    assert seen_by_globex.status_code == 200
    assert seen_by_globex.json() == []
    assert api.get("/api/v1/sandbox/requests", headers=bearer(globex.api_token)).json() == []


def test_a_sandbox_is_closed_to_a_tenant_that_did_not_enable_its_plugin(api, tenants) -> None:
    acme, globex = tenants
    acme_sets_up_push_fcm(api, acme)

    answer = api.post(f"/sandbox/globex/push_fcm{SEND_PATH}", json={}, headers=bearer("x"))
    assert answer.status_code == 404
    assert "not enabled" in answer.json()["detail"]
    # The refused call was not recorded anywhere.
    assert api.get("/api/v1/sandbox/requests", headers=bearer(globex.api_token)).json() == []
    assert len(api.get("/api/v1/sandbox/requests", headers=bearer(acme.api_token)).json()) == 1


def test_audit_entries_stay_in_their_tenant(api, tenants) -> None:
    acme, globex = tenants
    acme_sets_up_push_fcm(api, acme)

    acme_log = api.get("/api/v1/audit", headers=bearer(acme.api_token)).json()
    globex_log = api.get("/api/v1/audit", headers=bearer(globex.api_token)).json()
    assert {"plugin.enable", "plugin.config"} <= {e["action"] for e in acme_log}
    assert {e["id"] for e in acme_log}.isdisjoint(e["id"] for e in globex_log)
    assert not [e for e in globex_log if "acme" in e["actor"] or e["target"] in {"acme", "push_fcm"}]
    assert [(e["action"], e["target"]) for e in globex_log] == [("tenant.create", "globex")]


def test_tokens_are_listed_only_in_their_tenant(api, tenants) -> None:
    acme, globex = tenants
    created = api.post("/api/v1/tokens", json={"name": "acme ci"}, headers=bearer(acme.api_token))
    assert created.status_code == 201, created.text

    acme_tokens = api.get("/api/v1/tokens", headers=bearer(acme.api_token)).json()
    globex_tokens = api.get("/api/v1/tokens", headers=bearer(globex.api_token)).json()
    assert "acme ci" in {t["name"] for t in acme_tokens}
    assert acme.api_token[:10] in {t["prefix"] for t in acme_tokens}
    assert {t["id"] for t in acme_tokens}.isdisjoint(t["id"] for t in globex_tokens)
    assert {t["prefix"] for t in globex_tokens} == {globex.api_token[:10]}


def test_a_token_is_bound_to_its_tenant(api, tenants) -> None:
    acme, globex = tenants
    me = api.get("/api/v1/me?tenant=globex", headers={**bearer(acme.api_token), "X-Tenant": "globex"})
    assert (me.json()["tenant"], me.json()["email"]) == ("acme", "admin@acme.test")

    members = api.get("/api/v1/members", headers=bearer(acme.api_token)).json()
    assert [m["email"] for m in members] == ["admin@acme.test"]

    # acme's admin cannot revoke globex's token, which keeps working.
    globex_token_id = api.get("/api/v1/tokens", headers=bearer(globex.api_token)).json()[0]["id"]
    revoke = api.delete(f"/api/v1/tokens/{globex_token_id}", headers=bearer(acme.api_token))
    assert revoke.status_code == 404
    assert api.get("/api/v1/me", headers=bearer(globex.api_token)).json()["tenant"] == "globex"


def test_each_tenant_has_its_own_database_and_jobs(installation, api, tenants) -> None:
    # ``api`` builds the app first, as in the web process: it sets up the queue broker.
    acme, globex = tenants
    assert acme.tenant.database != globex.tenant.database
    if installation.backend == "sqlite":
        assert (installation.data_dir / "tenants" / acme.tenant.database).is_file()
        assert (installation.data_dir / "tenants" / globex.tenant.database).is_file()
    else:
        with control_engine().connect() as conn:
            names = conn.execute(
                text("SELECT datname FROM pg_database WHERE datname IN (:a, :b)"),
                {"a": acme.tenant.database, "b": globex.tenant.database},
            ).scalars()
            assert sorted(names) == sorted([acme.tenant.database, globex.tenant.database])

    with Session(tenant_engine(acme.tenant.database)) as session:
        add_job(session, "acme", "isolation.check", {"from": "acme"})
        session.commit()

    def job_count(database: str) -> int:
        with Session(tenant_engine(database)) as session:
            return session.exec(select(func.count()).select_from(Job)).one()

    assert job_count(acme.tenant.database) == 1
    assert job_count(globex.tenant.database) == 0


def test_another_tenants_pages_are_not_found(installation, tenants) -> None:
    acme, globex = tenants
    browser = installation.client()
    login(browser, globex.admin.email)

    assert browser.get("/t/globex/").status_code == 200
    for path in [
        "/t/acme/",
        "/t/acme/settings/plugins",
        "/t/acme/settings/sandbox",
        "/t/acme/settings/audit",
    ]:
        assert browser.get(path).status_code == 404, path
    # The same answer as for a tenant that does not exist: nothing is learned about who exists.
    assert browser.get("/t/no-such-tenant/").status_code == 404


def test_sandbox_page_shows_only_the_tenants_own_requests(installation, api, tenants) -> None:
    acme, globex = tenants
    acme_sets_up_push_fcm(api, acme)

    acme_browser, globex_browser = installation.client(), installation.client()
    login(acme_browser, acme.admin.email)
    login(globex_browser, globex.admin.email)

    acme_page = acme_browser.get("/t/acme/settings/sandbox")
    assert acme_page.status_code == 200
    assert SEND_PATH in acme_page.text
    globex_page = globex_browser.get("/t/globex/settings/sandbox")
    assert globex_page.status_code == 200
    assert SEND_PATH not in globex_page.text
    assert "No request has reached a sandbox yet." in globex_page.text
    assert SEND_PATH not in globex_browser.get("/t/globex/settings/sandbox/requests").text


def test_plugins_page_shows_the_plugin_enabled_only_where_it_is(installation, api, tenants) -> None:
    acme, globex = tenants
    acme_sets_up_push_fcm(api, acme)
    acme_browser, globex_browser = installation.client(), installation.client()
    login(acme_browser, acme.admin.email)
    login(globex_browser, globex.admin.email)

    def push_fcm_card(browser: TestClient, slug: str) -> str:
        page = browser.get(f"/t/{slug}/settings/plugins").text
        start = page.index('id="plugin-push_fcm"')
        return page[start : page.index("</section>", start)]

    acme_card, globex_card = push_fcm_card(acme_browser, "acme"), push_fcm_card(globex_browser, "globex")
    assert "enabled · sandbox" in acme_card and 'value="acme-app-b5ae1"' in acme_card
    assert '<span class="badge">disabled</span>' in globex_card
    assert "acme-app-b5ae1" not in globex_card
