"""Recording and reading what channel sandboxes received."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from core.db.engines import tenant_engine
from core.sandbox.models import SandboxRequest

# Shown as received, except credentials, which are cut to a recognisable prefix.
MASKED_HEADERS = frozenset({"authorization", "cookie", "x-hub-signature-256", "proxy-authorization"})
MAX_BODY = 256 * 1024


def mask_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers with credentials shortened (enough to tell which key was used, not to reuse it)."""
    return {
        k: (v[:16] + "…" if k.lower() in MASKED_HEADERS and len(v) > 16 else v) for k, v in headers.items()
    }


def _text(body: bytes) -> str:
    text = body[:MAX_BODY].decode("utf-8", errors="replace")
    return text + ("\n… (truncated)" if len(body) > MAX_BODY else "")


def record_request(
    database: str, channel: str, request: dict[str, Any], status_code: int, response: bytes
) -> int:
    """Keep one sandbox exchange in the tenant database; its id."""
    row = SandboxRequest(
        channel=channel,
        method=request["method"],
        path=request["path"],
        query=request.get("query", ""),
        headers=mask_headers(request.get("headers", {})),
        body=_text(request.get("body", b"")),
        status_code=status_code,
        response_body=_text(response),
    )
    with Session(tenant_engine(database)) as session:
        session.add(row)
        session.commit()
        assert row.id is not None
        return row.id


def recent_requests(database: str, channel: str | None = None, limit: int = 100) -> list[SandboxRequest]:
    """The newest requests the tenant's sandboxes received, optionally for one channel."""
    query = select(SandboxRequest)
    if channel:
        query = query.where(SandboxRequest.channel == channel)
    with Session(tenant_engine(database), expire_on_commit=False) as session:
        return list(session.exec(query.order_by(col(SandboxRequest.id).desc()).limit(limit)))
