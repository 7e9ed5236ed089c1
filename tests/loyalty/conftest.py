"""Fixtures of the loyalty tests: the club tenant on each backend."""

from tests.loyalty.club import club, postgres_club, sqlite_club

__all__ = ["club", "postgres_club", "sqlite_club"]
