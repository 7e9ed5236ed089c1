"""``/healthz``: is the control database reachable, is the broker up, which plugins are broken."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text

from core import __version__
from core.db.engines import control_engine
from core.plugins import get_host
from core.queue.broker import broker_state

router = APIRouter(tags=["health"])


def _database_state() -> tuple[bool, str]:
    engine = control_engine()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        return False, f"{engine.dialect.name} unreachable: {type(exc).__name__}"
    return True, engine.dialect.name


@router.get("/healthz")
async def healthz() -> JSONResponse:
    """200 when the database and the broker answer, 503 otherwise; broken plugins are listed."""
    db_ok, db_text = await run_in_threadpool(_database_state)
    broker_ok, broker_text = await run_in_threadpool(broker_state)
    host = get_host()
    body: dict[str, Any] = {
        "status": "ok" if db_ok and broker_ok else "unavailable",
        "version": __version__,
        "database": {"ok": db_ok, "backend": db_text},
        "broker": {"ok": broker_ok, "backend": broker_text},
        "plugins": {
            "ok": host.working(),
            "broken": {name: info.error for name, info in host.plugins.items() if info.broken},
        },
    }
    return JSONResponse(body, status_code=200 if db_ok and broker_ok else 503)
