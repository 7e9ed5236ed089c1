"""The role matrix: what admins, marketers, analysts and operators may do, by API and in the UI.

The expectations are written out here from the product's description of the roles, not read
from ``core.tenancy.roles.GRANTS``, so a change to the grants (or a route guarded with the wrong
permission) makes these tests fail. Also specified: deny by default, i.e. the app refuses to
start with a route that names no permission, and every API route names one.
"""

from __future__ import annotations

import re
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import text

from core.db.engines import control_engine, control_session
from core.tenancy.keys import issue_api_token
from core.tenancy.members import put_member
from core.tenancy.roles import GRANTS, Permission, Role
from core.tenancy.tenants import get_tenant
from core.tenancy.users import get_user_by_email
from tests.support import PASSWORD, bearer, csrf_of, login
from web.app import create_app
from web.auth import Principal, require
from web.guard import UnguardedRouteError, check_routes_guarded

SLUG = "acme"
READ_DATA, READ_SETTINGS, MANAGE_PLUGINS = "read data", "read settings", "manage plugins"
MANAGE_USERS, READ_AUDIT, WRITE_MARKETING = "manage users", "read audit", "write marketing"
MANAGE_PRIVACY = "manage privacy"

# Who may do what. Admins: everything. Marketers: data, marketing changes and settings; no
# plugins, users or audit. Analysts: read data only. Operators (IT): plugins, settings and
# audit; no marketing changes, no users.
ALLOWED: dict[str, set[str]] = {
    "admin": {
        READ_DATA,
        WRITE_MARKETING,
        READ_SETTINGS,
        MANAGE_PLUGINS,
        MANAGE_USERS,
        READ_AUDIT,
        MANAGE_PRIVACY,
    },
    "marketer": {READ_DATA, WRITE_MARKETING, READ_SETTINGS},
    "analyst": {READ_DATA},
    "operator": {READ_DATA, READ_SETTINGS, MANAGE_PLUGINS, READ_AUDIT},
}
ROLES = sorted(ALLOWED)

# (family, method, path); a permitted call answers 200, a refused one 403.
API_CALLS = [
    (READ_DATA, "GET", "/api/v1/me"),
    (READ_DATA, "GET", "/api/v1/tokens"),
    (READ_SETTINGS, "GET", "/api/v1/plugins"),
    (READ_SETTINGS, "GET", "/api/v1/sandbox/requests"),
    (READ_SETTINGS, "GET", "/api/v1/write-keys"),
    (MANAGE_PLUGINS, "POST", "/api/v1/plugins/push_fcm/enable"),
    (MANAGE_PLUGINS, "GET", "/api/v1/channels/push_fcm/config"),
    (MANAGE_USERS, "GET", "/api/v1/members"),
    (MANAGE_USERS, "PUT", "/api/v1/members"),
    (READ_AUDIT, "GET", "/api/v1/audit"),
]
NEW_MEMBER = {"email": "newcomer@acme.test", "role": "analyst", "password": PASSWORD}

# (family, method, path); a permitted page answers 200 (a form post: 303), a refused one 403.
UI_CALLS = [
    (READ_DATA, "GET", f"/t/{SLUG}/"),
    (READ_DATA, "GET", f"/t/{SLUG}/profiles"),
    (READ_DATA, "GET", f"/t/{SLUG}/wallet/operations"),
    (WRITE_MARKETING, "GET", f"/t/{SLUG}/wallet/operations/new"),
    (READ_SETTINGS, "GET", f"/t/{SLUG}/settings/plugins"),
    (READ_SETTINGS, "GET", f"/t/{SLUG}/settings/sandbox"),
    (MANAGE_PLUGINS, "POST", f"/t/{SLUG}/settings/plugins/push_fcm/state"),
    (MANAGE_USERS, "GET", f"/t/{SLUG}/settings/members"),
    (READ_AUDIT, "GET", f"/t/{SLUG}/settings/audit"),
]


@pytest.fixture
def team(sqlite_installation) -> dict[str, str]:
    """Tenant ``acme`` with one member per role (``<role>@acme.test``); each one's API token."""
    sqlite_installation.tenant(SLUG)
    tokens = {}
    with control_session() as session:
        tenant = get_tenant(session, SLUG)
        for role in ROLES:
            email = f"{role}@{SLUG}.test"
            if role != "admin":
                put_member(session, tenant, email=email, role=role, password=PASSWORD, actor="test")
            user = get_user_by_email(session, email)
            assert user is not None
            _, tokens[role] = issue_api_token(session, tenant, user, name=f"{role} token")
        session.commit()
    return tokens


def admin_view(client: TestClient, tokens: dict[str, str]) -> tuple[bool, set[str]]:
    """(push_fcm enabled?, member emails) as the admin sees them."""
    plugins = client.get("/api/v1/plugins", headers=bearer(tokens["admin"])).json()
    members = client.get("/api/v1/members", headers=bearer(tokens["admin"])).json()
    return next(p["enabled"] for p in plugins if p["name"] == "push_fcm"), {m["email"] for m in members}


def test_the_grants_are_the_ones_this_matrix_specifies() -> None:
    granted = {role.value: {str(p).replace("_", " ") for p in GRANTS[role]} for role in Role}
    assert granted == ALLOWED


@pytest.mark.parametrize("role", ROLES)
def test_api_answers_each_role_as_its_grants_say(sqlite_installation, team, role) -> None:
    client = sqlite_installation.client()
    answers = {}
    for _, method, path in API_CALLS:
        body = NEW_MEMBER if method == "PUT" else None
        answer = client.request(method, path, headers=bearer(team[role]), json=body)
        answers[(method, path)] = answer.status_code
        if answer.status_code == 403:
            assert f"Your role ({role}) does not allow this" in answer.json()["detail"]

    expected = {(m, p): 200 if family in ALLOWED[role] else 403 for family, m, p in API_CALLS}
    assert answers == expected

    # A refused call changed nothing; a permitted one took effect.
    enabled, emails = admin_view(client, team)
    assert enabled is (MANAGE_PLUGINS in ALLOWED[role])
    assert ("newcomer@acme.test" in emails) is (MANAGE_USERS in ALLOWED[role])


@pytest.mark.parametrize("role", ROLES)
def test_pages_answer_each_role_as_its_grants_say(sqlite_installation, team, role) -> None:
    browser = sqlite_installation.client()
    login(browser, f"{role}@{SLUG}.test")
    csrf = csrf_of(browser, f"/t/{SLUG}/profiles")
    answers = {}
    for _, method, path in UI_CALLS:
        form = {"action": "enable", "csrf_token": csrf} if method == "POST" else None
        answers[(method, path)] = browser.request(method, path, data=form, follow_redirects=False).status_code

    def allowed_status(method: str) -> int:
        return 303 if method == "POST" else 200

    expected = {(m, p): allowed_status(m) if f in ALLOWED[role] else 403 for f, m, p in UI_CALLS}
    assert answers == expected
    enabled, _ = admin_view(sqlite_installation.client(), team)
    assert enabled is (MANAGE_PLUGINS in ALLOWED[role])


@pytest.mark.parametrize("role", ["admin", "marketer", "operator"])
def test_plugins_page_offers_controls_only_to_those_who_may_use_them(sqlite_installation, team, role) -> None:
    browser = sqlite_installation.client()
    login(browser, f"{role}@{SLUG}.test")
    page = browser.get(f"/t/{SLUG}/settings/plugins").text
    may_manage = MANAGE_PLUGINS in ALLOWED[role]
    assert ('name="action" value="enable"' in page) is may_manage
    assert ("Save configuration" in page) is may_manage


def test_navigation_hides_settings_an_analyst_cannot_open(sqlite_installation, team) -> None:
    browser = sqlite_installation.client()
    login(browser, f"analyst@{SLUG}.test")
    page = browser.get(f"/t/{SLUG}/profiles").text
    for path in ["/settings/plugins", "/settings/members", "/settings/audit"]:
        assert f'href="/t/{SLUG}{path}"' not in page, path


def test_a_membership_with_an_unknown_role_may_do_nothing(sqlite_installation, team) -> None:
    with control_engine().begin() as conn:
        conn.execute(text("UPDATE membership SET role = 'superuser'"))
    client = sqlite_installation.client()
    for _, method, path in API_CALLS:
        assert client.request(method, path, headers=bearer(team["admin"])).status_code == 403, path


# --- deny by default -------------------------------------------------------------------------

PUBLIC_PATHS = {"/", "/login", "/logout", "/healthz", "/docs", "/docs/oauth2-redirect", "/openapi.json"}
# /v1: write-key auth; /l and /o: tracked links and open reports, signed per tenant and delivery; /w: wallet pass links,
# signed per tenant, template and profile.
PUBLIC_PREFIXES = ("/static", "/sandbox/", "/webhooks/", "/x/", "/v1/", "/l/", "/o/", "/w/")

# The permission each API route needs, written out.
API_PERMISSIONS = {
    ("GET", "/api/v1/me"): "read_data",
    ("GET", "/api/v1/tokens"): "read_data",
    ("POST", "/api/v1/tokens"): "read_data",
    ("DELETE", "/api/v1/tokens/{token_id}"): "read_data",
    ("GET", "/api/v1/plugins"): "read_settings",
    ("GET", "/api/v1/write-keys"): "read_settings",
    ("GET", "/api/v1/sandbox/requests"): "read_settings",
    ("POST", "/api/v1/plugins/{name}/enable"): "manage_plugins",
    ("POST", "/api/v1/plugins/{name}/disable"): "manage_plugins",
    ("GET", "/api/v1/channels/{channel}/config"): "manage_plugins",
    ("PUT", "/api/v1/channels/{channel}/config"): "manage_plugins",
    ("GET", "/api/v1/members"): "manage_users",
    ("PUT", "/api/v1/members"): "manage_users",
    ("GET", "/api/v1/audit"): "read_audit",
    ("GET", "/api/v1/profiles"): "read_data",
    ("GET", "/api/v1/profiles/{profile_id}"): "read_data",
    ("GET", "/api/v1/profiles/{profile_id}/events"): "read_data",
    ("POST", "/api/v1/profiles/{profile_id}/consents"): "write_marketing",
    ("GET", "/api/v1/profiles/{profile_id}/export"): "manage_privacy",
    ("DELETE", "/api/v1/profiles/{profile_id}"): "manage_privacy",
    ("POST", "/api/v1/merges/{merge_id}/undo"): "manage_privacy",
    ("GET", "/api/v1/loyalty/programs"): "read_data",
    ("POST", "/api/v1/loyalty/programs"): "write_marketing",
    ("POST", "/api/v1/loyalty/programs/{program_id}/dry-run"): "read_data",
    ("GET", "/api/v1/profiles/{profile_id}/loyalty"): "read_data",
    ("POST", "/api/v1/profiles/{profile_id}/loyalty/adjustments"): "write_marketing",
    ("POST", "/api/v1/profiles/{profile_id}/loyalty/redemptions"): "write_marketing",
    ("POST", "/api/v1/loyalty/coupons/{code}/use"): "write_marketing",
}


def endpoints(app: FastAPI) -> list[tuple[str, set[str], Dependant]]:
    """(full path, methods, dependencies) of every endpoint, with included routers flattened.

    FastAPI 0.16x keeps an included router as one entry of ``app.routes``; its routes (with the
    router's prefix and dependencies applied) are only reachable through ``iter_route_contexts``.
    """
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI copies included routes into app.routes
        return [(r.path, set(r.methods), r.dependant) for r in app.routes if isinstance(r, APIRoute)]
    return [
        (c.path, set(c.methods or ()), c.dependant)
        for c in iter_route_contexts(app.routes)
        if isinstance(c.original_route, APIRoute)
    ]


def permissions_of(dependant: Dependant) -> set[str]:
    """The permissions an endpoint's dependencies (at any depth) require."""
    found, stack = set(), list(dependant.dependencies)
    while stack:
        dependency = stack.pop()
        permission = getattr(dependency.call, "required_permission", None)
        if permission is not None:
            found.add(str(permission))
        stack.extend(dependency.dependencies)
    return found


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def test_the_app_refuses_to_start_with_an_unguarded_route(sqlite_installation) -> None:
    app = create_app()

    @app.get("/t/{tenant}/forgotten")
    def forgotten(tenant: str) -> dict:
        return {"tenant": tenant}

    with pytest.raises(UnguardedRouteError, match=re.escape("/t/{tenant}/forgotten")):
        check_routes_guarded(app)


def test_the_app_refuses_an_unguarded_route_added_through_a_router(sqlite_installation) -> None:
    app = create_app()
    router = APIRouter(prefix="/api/v1")

    @router.get("/export")
    def export() -> dict:
        return {"everything": True}

    app.include_router(router)
    with pytest.raises(UnguardedRouteError, match="/api/v1/export"):
        check_routes_guarded(app)


def test_a_route_that_names_its_permission_is_accepted(sqlite_installation) -> None:
    app = create_app()

    @app.get("/api/v1/guarded")
    def guarded(principal: Annotated[Principal, Depends(require(Permission.read_audit, api=True))]) -> dict:
        return {}

    check_routes_guarded(app)  # does not raise
    assert TestClient(app).get("/api/v1/guarded").status_code == 401


def test_every_route_of_the_real_app_names_a_permission_unless_public(sqlite_installation) -> None:
    routes = endpoints(create_app())
    assert len(routes) > 20, "the app's routes were found"
    unguarded = [
        path for path, _, dependant in routes if not is_public(path) and not permissions_of(dependant)
    ]
    assert unguarded == []

    api = {
        (m, path): permissions_of(d)
        for path, methods, d in routes
        if path.startswith("/api/")
        for m in methods
    }
    for (method, path), permission in API_PERMISSIONS.items():
        assert api.get((method, path)) == {permission}, f"{method} {path}"
    assert all(api.values()), "every API route names a permission"


def test_every_api_route_refuses_a_call_without_a_token(sqlite_installation) -> None:
    app = create_app()
    client = TestClient(app)
    api_routes = [(path, methods) for path, methods, _ in endpoints(app) if path.startswith("/api/")]
    assert len(api_routes) >= len(API_PERMISSIONS)
    for path, methods in api_routes:
        path = re.sub(r"\{token_id\}", "1", path)
        path = re.sub(r"\{[^}]+\}", "push_fcm", path)
        for method in methods:
            answer = client.request(method, path)
            assert answer.status_code == 401, f"{method} {path}: {answer.status_code}"
            assert answer.headers["www-authenticate"].startswith("Bearer")
