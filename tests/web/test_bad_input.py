"""Bad input gets a clear refusal and changes nothing.

Wrong passwords, missing, garbage and revoked tokens, unknown plugins and tenants, malformed or
invalid plugin config, and forms without their CSRF token: each answers with the right status
and a message saying what is wrong, and leaves the installation as it was. Sign-ins, failed or
not, are in the tenant's audit log. ``/healthz`` reports a working installation as healthy.
"""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from core.tenancy.onboarding import NewTenant
from tests.support import PASSWORD, bearer, csrf_of, login

SERVICE_ACCOUNT = json.dumps({"client_email": "push@acme.iam.gserviceaccount.com", "private_key": "pk"})


@pytest.fixture
def acme(sqlite_installation) -> NewTenant:
    return sqlite_installation.tenant("acme")


@pytest.fixture
def client(sqlite_installation, acme) -> TestClient:
    return sqlite_installation.client()


def login_form_token(client: TestClient) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert match
    return match.group(1)


def audit(client: TestClient, token: str, action: str) -> list[dict]:
    answer = client.get(f"/api/v1/audit?action={action}", headers=bearer(token))
    assert answer.status_code == 200, answer.text
    return answer.json()


# --- signing in ------------------------------------------------------------------------------


def test_a_wrong_password_is_refused_and_audited(client, acme) -> None:
    form = {
        "email": "admin@acme.test",
        "password": "not-the-password",
        "csrf_token": login_form_token(client),
    }
    answer = client.post("/login", data=form, follow_redirects=False)

    assert answer.status_code == 401
    assert "Wrong email or password." in answer.text
    assert client.get("/t/acme/", follow_redirects=False).status_code == 303  # still signed out
    (entry,) = audit(client, acme.api_token, "login.failed")
    assert entry["actor"] == "admin@acme.test"


def test_an_unknown_email_gets_the_same_answer(client, acme) -> None:
    form = {"email": "nobody@acme.test", "password": PASSWORD, "csrf_token": login_form_token(client)}
    answer = client.post("/login", data=form, follow_redirects=False)
    assert answer.status_code == 401
    assert "Wrong email or password." in answer.text
    assert audit(client, acme.api_token, "login.failed") == []  # no tenant to file it under


def test_a_successful_sign_in_is_audited(client, acme) -> None:
    login(client, "admin@acme.test")
    entries = audit(client, acme.api_token, "login")
    assert [e["actor"] for e in entries] == ["admin@acme.test"]
    assert audit(client, acme.api_token, "login.failed") == []


def test_signing_in_without_the_forms_csrf_token_is_refused(client, acme) -> None:
    client.get("/login")
    answer = client.post("/login", data={"email": "admin@acme.test", "password": PASSWORD})
    assert answer.status_code == 403
    assert "CSRF" in answer.json()["detail"]
    assert audit(client, acme.api_token, "login") == []


# --- API tokens ------------------------------------------------------------------------------


def test_a_missing_token_says_how_to_send_one(client) -> None:
    answer = client.get("/api/v1/me")
    assert answer.status_code == 401
    assert "Authorization: Bearer" in answer.json()["detail"]
    assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "tsr_only-the-token"])
def test_a_malformed_authorization_header_counts_as_missing(client, header) -> None:
    answer = client.get("/api/v1/me", headers={"Authorization": header})
    assert answer.status_code == 401
    assert "Authorization: Bearer" in answer.json()["detail"]


def test_a_garbage_token_is_refused(client) -> None:
    answer = client.get("/api/v1/me", headers=bearer("tsr_this-is-not-a-token"))
    assert answer.status_code == 401
    assert "Invalid or revoked" in answer.json()["detail"]


def test_a_revoked_token_stops_working_at_once(client, acme) -> None:
    created = client.post("/api/v1/tokens", json={"name": "short-lived"}, headers=bearer(acme.api_token))
    assert created.status_code == 201
    token, token_id = created.json()["token"], created.json()["id"]
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200

    revoked = client.delete(f"/api/v1/tokens/{token_id}", headers=bearer(acme.api_token))
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None

    answer = client.get("/api/v1/me", headers=bearer(token))
    assert answer.status_code == 401
    assert "Invalid or revoked" in answer.json()["detail"]
    assert client.get("/api/v1/me", headers=bearer(acme.api_token)).status_code == 200
    assert [e["action"] for e in audit(client, acme.api_token, "token.revoke")] == ["token.revoke"]


def test_revoking_an_unknown_token_is_not_found(client, acme) -> None:
    answer = client.delete("/api/v1/tokens/999999", headers=bearer(acme.api_token))
    assert answer.status_code == 404


def test_a_token_without_a_name_is_refused(client, acme) -> None:
    answer = client.post("/api/v1/tokens", json={"name": ""}, headers=bearer(acme.api_token))
    assert answer.status_code == 422
    assert [p["field"] for p in answer.json()["problems"]] == ["name"]


# --- plugins and their config ----------------------------------------------------------------


def test_enabling_an_unknown_plugin_is_not_found(client, acme) -> None:
    answer = client.post("/api/v1/plugins/no_such_plugin/enable", headers=bearer(acme.api_token))
    assert answer.status_code == 404
    detail = answer.json()["detail"]
    assert "Unknown plugin 'no_such_plugin'" in detail
    assert "push_fcm" in detail  # it lists what is installed
    assert audit(client, acme.api_token, "plugin.enable") == []


def test_an_unknown_field_when_enabling_is_refused(client, acme) -> None:
    answer = client.post(
        "/api/v1/plugins/push_fcm/enable", json={"mode": "live"}, headers=bearer(acme.api_token)
    )
    assert answer.status_code == 422
    assert answer.json()["problems"]


def test_config_for_an_unknown_channel_is_not_found(client, acme) -> None:
    answer = client.put("/api/v1/channels/no_such_channel/config", json={}, headers=bearer(acme.api_token))
    assert answer.status_code == 404
    assert "Unknown channel" in answer.json()["detail"]


def test_a_malformed_json_body_is_refused_with_its_problems(client, acme) -> None:
    answer = client.put(
        "/api/v1/channels/push_fcm/config",
        content=b'{"project_id": "acme-app", ',
        headers={**bearer(acme.api_token), "Content-Type": "application/json"},
    )
    assert answer.status_code == 422
    body = answer.json()
    assert body["detail"] == "Invalid input."
    assert body["problems"] and all(p["message"] for p in body["problems"])


def test_an_invalid_config_is_refused_naming_the_field_and_nothing_is_stored(client, acme) -> None:
    answer = client.put(
        "/api/v1/channels/push_fcm/config",
        json={"service_account_json": SERVICE_ACCOUNT},
        headers=bearer(acme.api_token),
    )
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert "project_id" in detail["problems"]
    assert "project_id" in detail["message"]

    stored = client.get("/api/v1/channels/push_fcm/config", headers=bearer(acme.api_token))
    assert stored.json() == {}
    assert audit(client, acme.api_token, "plugin.config") == []


def test_a_config_that_is_not_a_service_account_is_refused_without_echoing_it(client, acme) -> None:
    secret = "not-json-but-a-secret-8c1e"
    answer = client.put(
        "/api/v1/channels/push_fcm/config",
        json={"project_id": "acme-app", "service_account_json": secret},
        headers=bearer(acme.api_token),
    )
    assert answer.status_code == 422
    assert "service_account_json" in answer.json()["detail"]["problems"]
    assert secret not in answer.text


def test_a_config_with_an_unknown_field_is_refused(client, acme) -> None:
    config = {"project_id": "acme-app", "service_account_json": SERVICE_ACCOUNT, "region": "eu"}
    answer = client.put("/api/v1/channels/push_fcm/config", json=config, headers=bearer(acme.api_token))
    assert answer.status_code == 422
    assert "region" in answer.json()["detail"]["problems"]


# --- forms and pages -------------------------------------------------------------------------


def plugin_enabled(client: TestClient, token: str) -> bool:
    plugins = client.get("/api/v1/plugins", headers=bearer(token)).json()
    return next(p["enabled"] for p in plugins if p["name"] == "push_fcm")


@pytest.mark.parametrize("csrf", [None, "", "forged-token"])
def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(client, acme, csrf) -> None:
    login(client, "admin@acme.test")
    form = {"action": "enable"} if csrf is None else {"action": "enable", "csrf_token": csrf}
    answer = client.post("/t/acme/settings/plugins/push_fcm/state", data=form, follow_redirects=False)

    assert answer.status_code == 403
    assert plugin_enabled(client, acme.api_token) is False
    assert audit(client, acme.api_token, "plugin.enable") == []


def test_adding_a_member_without_the_csrf_token_changes_nothing(client, acme) -> None:
    login(client, "admin@acme.test")
    form = {"email": "intruder@evil.test", "role": "admin", "password": "intruder-pass-1"}
    answer = client.post("/t/acme/settings/members", data=form, follow_redirects=False)
    assert answer.status_code == 403
    members = client.get("/api/v1/members", headers=bearer(acme.api_token)).json()
    assert [m["email"] for m in members] == ["admin@acme.test"]


def test_the_same_form_with_its_csrf_token_goes_through(client, acme) -> None:
    login(client, "admin@acme.test")
    form = {"action": "enable", "csrf_token": csrf_of(client, "/t/acme/settings/plugins")}
    answer = client.post("/t/acme/settings/plugins/push_fcm/state", data=form, follow_redirects=False)
    assert answer.status_code == 303
    assert plugin_enabled(client, acme.api_token) is True


def test_an_unknown_form_action_is_refused(client, acme) -> None:
    login(client, "admin@acme.test")
    form = {"action": "explode", "csrf_token": csrf_of(client, "/t/acme/settings/plugins")}
    answer = client.post("/t/acme/settings/plugins/push_fcm/state", data=form, follow_redirects=False)
    assert answer.status_code == 400
    assert plugin_enabled(client, acme.api_token) is False


def test_an_unknown_tenant_page_is_not_found(client) -> None:
    login(client, "admin@acme.test")
    answer = client.get("/t/no-such-tenant/", headers={"Accept": "text/html"})
    assert answer.status_code == 404
    assert "Not found" in answer.text
    assert client.get("/t/acme/no-such-section").status_code == 404


def test_a_page_asks_a_signed_out_visitor_to_sign_in(client) -> None:
    answer = client.get("/t/acme/settings/plugins", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Ft%2Facme%2Fsettings%2Fplugins"


def test_a_redirect_after_sign_in_never_leaves_the_site(client) -> None:
    form = {
        "email": "admin@acme.test",
        "password": PASSWORD,
        "next": "//evil.example/phish",
        "csrf_token": login_form_token(client),
    }
    answer = client.post("/login", data=form, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"


def test_health_reports_database_and_broker_ok(installation) -> None:
    answer = installation.client().get("/healthz")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok"
    assert body["database"] == {
        "ok": True,
        "backend": {"sqlite": "sqlite", "postgres": "postgresql"}[installation.backend],
    }
    assert body["broker"] == {"ok": True, "backend": "in-process"}
    assert body["plugins"]["broken"] == {}
