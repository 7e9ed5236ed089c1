"""Deny by default: every route must name the permission it needs, or be listed here as public."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, _IncludedRouter
from starlette.routing import BaseRoute

# Public on purpose: signing in, health, docs, static files, plugin-facing endpoints that do their
# own authentication (provider signatures, sandbox auth) behind a per-tenant enablement check,
# ingestion (/v1/, authenticated by the tenant's write key), and tracked links (/l/, clicked by
# customers; the token is signed per tenant and delivery), and wallet pass links (/w/, opened by
# customers; the token is signed per tenant, template and profile), and open reports (/o/, called by
# apps when a push notification is opened; signed per tenant and delivery).
PUBLIC_PATHS = frozenset(
    {"/login", "/logout", "/", "/healthz", "/docs", "/docs/oauth2-redirect", "/openapi.json"}
)
PUBLIC_PREFIXES = ("/static", "/sandbox/", "/webhooks/", "/x/", "/v1/", "/l/", "/o/", "/w/")


class UnguardedRouteError(RuntimeError):
    """A route was added without a permission: the app refuses to start."""


def _endpoints(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, Dependant]]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route.dependant
        elif isinstance(route, _IncludedRouter):
            # FastAPI >= 0.16x keeps an included router as one entry. Its own routes were built once
            # at import; asking the entry for its expanded routes would build them again per app.
            # Dependencies given at include time (plugin enablement) are never permissions.
            yield from _endpoints(route.original_router.routes, prefix + route.include_context.prefix)


def _permissions(dependant: Dependant) -> set[str]:
    found = set()
    stack = list(dependant.dependencies)
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
        path
        for path, dependant in _endpoints(app.routes)
        if path not in PUBLIC_PATHS and not path.startswith(PUBLIC_PREFIXES) and not _permissions(dependant)
    ]
    if unguarded:
        raise UnguardedRouteError(f"Routes without a permission (use web.auth.require): {sorted(unguarded)}")
