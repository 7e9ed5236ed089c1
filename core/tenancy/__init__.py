"""Tenants, users, memberships (role and scope), API tokens, write keys, plugin settings."""
