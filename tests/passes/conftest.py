"""Fixtures of the wallet pass tests: the shop tenant with Apple Wallet, on each backend."""

from tests.passes.shop import shop, sqlite_shop

__all__ = ["shop", "sqlite_shop"]
