"""Tessera core: the customer data platform, with no channel known by name."""

__version__ = "0.1.0"
