"""Fixtures: the fake Graph API served with uvicorn on a free loopback port, in a thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tessera_whatsapp.sandbox import FakeWhatsApp
from whatsapp_serving import serve


@pytest.fixture
def fake() -> Iterator[tuple[FakeWhatsApp, str]]:
    """A fresh fake and the URL it is served at."""
    state = FakeWhatsApp()
    with serve(state.app) as url:
        yield state, url
