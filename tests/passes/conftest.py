"""Fixtures of the wallet pass tests: the shop tenant with Apple Wallet, on each backend."""

from tests.passes.shop import postgres_shop, shop, sqlite_shop

__all__ = ["postgres_shop", "shop", "sqlite_shop"]
