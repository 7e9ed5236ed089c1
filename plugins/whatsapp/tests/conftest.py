"""Fixtures: the fake Graph API served with uvicorn on a free loopback port, in a thread; the plugin's
records in memory; Meta's pair limit left to the tests that check it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from tessera_whatsapp import sending, templates
from tessera_whatsapp.sandbox import FakeWhatsApp
from whatsapp_serving import serve


class MemoryStore:
    """``plugin_data``'s interface over a dict (the real one needs a tenant database)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.times: dict[str, datetime] = {}

    def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default``."""
        return self.values.get(key, default)

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``."""
        self.values[key], self.times[key] = value, datetime.now(UTC)

    def delete(self, key: str) -> None:
        """Forget ``key``."""
        self.values.pop(key, None)

    def keys(self, prefix: str = "") -> list[str]:
        """The keys starting with ``prefix``."""
        return sorted(k for k in self.values if k.startswith(prefix))

    def updated_at(self, key: str) -> datetime | None:
        """When ``key`` was last written."""
        return self.times.get(key)


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, MemoryStore]]:
    """Per test: fresh in-memory plugin records per tenant, no cached copies, no pair limit."""
    stores: dict[str, MemoryStore] = {}
    monkeypatch.setattr(templates, "store_for", lambda tenant: stores.setdefault(tenant, MemoryStore()))
    monkeypatch.setattr(sending, "claim", lambda key, seconds: 0.0)
    templates.forget_cache()
    yield stores
    templates.forget_cache()


@pytest.fixture
def fake() -> Iterator[tuple[FakeWhatsApp, str]]:
    """A fresh fake and the URL it is served at."""
    state = FakeWhatsApp()
    with serve(state.app) as url:
        yield state, url
