"""FastAPI's native OpenTelemetry is off unless the operator turns it on (``TESSERA_OPENTELEMETRY``):
off, a request never asks OpenTelemetry for its providers; on, every request does."""

from __future__ import annotations

import pytest
from opentelemetry import trace

from core.settings import reset_settings


def tracer_lookups(installation, monkeypatch: pytest.MonkeyPatch) -> int:
    """How many times serving one request looked up OpenTelemetry's tracer provider."""
    lookups: list[object] = []
    real = trace.get_tracer_provider

    def counted() -> trace.TracerProvider:
        lookups.append(None)
        return real()

    with installation.client() as client:
        monkeypatch.setattr(trace, "get_tracer_provider", counted)
        assert client.get("/healthz").status_code == 200
    return len(lookups)


def test_requests_skip_opentelemetry_unless_it_is_turned_on(sqlite_installation, monkeypatch) -> None:
    assert tracer_lookups(sqlite_installation, monkeypatch) == 0
    monkeypatch.setenv("TESSERA_OPENTELEMETRY", "true")
    reset_settings()
    assert tracer_lookups(sqlite_installation, monkeypatch) > 0
