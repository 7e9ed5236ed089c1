"""Databases: one control database, and one database per tenant."""
