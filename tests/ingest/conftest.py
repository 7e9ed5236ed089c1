"""Ingestion fixtures: a tenant with its write key, a test client, a live `tessera serve`, and
helpers that read what the tenant's database holds."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from core.db import engines
from core.ingest.models import Event
from core.queue.models import Job
from core.tenancy.onboarding import NewTenant
from tests.support import serving


def basic(write_key: str) -> dict[str, str]:
    """The Authorization header SDKs send: the write key as Basic user name, no password."""
    return {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}


def stored(tenant: NewTenant) -> list[Event]:
    """Every event in the tenant's database, in insertion order."""
    with Session(engines.tenant_engine(tenant.tenant.database)) as session:
        return list(session.exec(select(Event).order_by(col(Event.id))))


def jobs(tenant: NewTenant, kind: str = "core.process_events") -> list[Job]:
    """The tenant's outbox jobs of one kind."""
    with Session(engines.tenant_engine(tenant.tenant.database)) as session:
        return list(session.exec(select(Job).where(Job.kind == kind).order_by(col(Job.id))))


@dataclass
class Ingest:
    """A tenant and a client of a fresh app."""

    tenant: NewTenant
    client: TestClient

    @property
    def auth(self) -> dict[str, str]:
        return basic(self.tenant.write_key)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        """POST with the tenant's write key (unless headers are given)."""
        kwargs.setdefault("headers", self.auth)
        if body is not None:
            kwargs["json"] = body
        return self.client.post(path, **kwargs)


@pytest.fixture
def acme(installation) -> NewTenant:
    return installation.tenant("acme")


@pytest.fixture
def ingest(installation, acme) -> Iterator[Ingest]:
    with installation.client() as client:
        yield Ingest(acme, client)


@pytest.fixture
def live_server(installation, acme, tmp_path: Path) -> Iterator[tuple[str, NewTenant]]:
    """``(base_url, tenant)``: `tessera serve` on a free port over the installation (both backends)."""
    try:
        with serving({**installation.env, "TESSERA_LOG_LEVEL": "WARNING"}, tmp_path / "serve.log") as base:
            yield base, acme
    finally:
        engines.dispose_engines()  # the server's connections are gone; drop ours before cleanup
