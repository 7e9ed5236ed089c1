"""Roles and what each may do. Deny by default: a permission not listed is refused."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    """A member's role in one tenant."""

    admin = "admin"  # everything in the tenant, including users and plugins
    marketer = "marketer"  # builds audiences, campaigns, journeys, passes
    analyst = "analyst"  # reads everything a marketer sees, changes nothing
    operator = "operator"  # IT: plugins, sandbox, health; no marketing changes, no users


class Permission(enum.StrEnum):
    """One thing a route may require."""

    read_data = "read_data"  # profiles, segments, campaigns, journeys, wallet, loyalty, reports
    write_marketing = "write_marketing"  # create and change marketing objects, launch sends
    manage_plugins = "manage_plugins"  # enable, disable and configure plugins
    read_settings = "read_settings"  # see settings, plugin state, write keys, sandbox traffic
    manage_users = "manage_users"  # invite members, change roles and scopes
    read_audit = "read_audit"  # read the audit log
    manage_privacy = "manage_privacy"  # export or erase a person's data, undo identity merges


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.admin: frozenset(Permission),
    Role.marketer: frozenset({Permission.read_data, Permission.write_marketing, Permission.read_settings}),
    Role.analyst: frozenset({Permission.read_data}),
    Role.operator: frozenset(
        {Permission.read_data, Permission.manage_plugins, Permission.read_settings, Permission.read_audit}
    ),
}


def allows(role: str | Role, permission: Permission) -> bool:
    """Whether ``role`` grants ``permission``; unknown roles grant nothing."""
    try:
        return permission in GRANTS[Role(role)]
    except ValueError:
        return False
