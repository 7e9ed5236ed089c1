"""Fixtures: the fake Graph API served with uvicorn on a free loopback port, in a thread; the plugin's
records in memory; Meta's pair limit left to the tests that check it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tessera_whatsapp import sending, templates
from tessera_whatsapp.sandbox import FakeWhatsApp
from whatsapp_serving import serve
from whatsapp_stores import MemoryStore


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
