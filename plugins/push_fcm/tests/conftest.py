"""Shared fixtures: the fake FCM served by uvicorn on a free port (helpers in fcm_support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fcm_support import FakeServer
from tessera_google_auth.introduce import introduced
from tessera_push_fcm.sender import TOKENS


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeServer]:
    """One served fake per test module."""
    with FakeServer() as server:
        yield server


@pytest.fixture
def clean(fake: FakeServer) -> FakeServer:
    """The fake, reset, with no access token cached on our side."""
    httpx.post(f"{fake.url}/_sandbox/reset")
    TOKENS.clear()
    introduced.clear()  # so the channel introduces its account again (a test may make the fake forget it)
    return fake
