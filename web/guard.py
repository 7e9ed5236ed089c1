"""Deny by default: every route must name the permission it needs, or be listed here as public."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute

# Public on purpose: signing in, health, docs, static files, and plugin-facing endpoints that do
# their own authentication (provider signatures, sandbox auth) behind a per-tenant enablement check.
PUBLIC_PATHS = frozenset(
    {"/login", "/logout", "/", "/healthz", "/docs", "/docs/oauth2-redirect", "/openapi.json"}
)
PUBLIC_PREFIXES = ("/static", "/sandbox/", "/webhooks/", "/x/")


class UnguardedRouteError(RuntimeError):
    """A route was added without a permission: the app refuses to start."""


def _permissions(route: APIRoute) -> set[str]:
    found = set()
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        permission = getattr(dep.call, "required_permission", None)
        if permission is not None:
            found.add(permission.value)
        stack.extend(dep.dependencies)
    return found


def check_routes_guarded(app: FastAPI) -> None:
    """Raise if a non-public route requires no permission."""
    unguarded = [
        route.path
        for route in app.routes
        if isinstance(route, APIRoute)
        and route.path not in PUBLIC_PATHS
        and not route.path.startswith(PUBLIC_PREFIXES)
        and not _permissions(route)
    ]
    if unguarded:
        raise UnguardedRouteError(f"Routes without a permission (use web.auth.require): {sorted(unguarded)}")
