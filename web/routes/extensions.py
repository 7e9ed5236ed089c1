"""Where plugins meet the outside: channel sandboxes, plugin routers, provider webhooks.

Each is reachable only for a tenant that enabled the plugin; otherwise the answer is 404.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from core.db.engines import control_session, tenant_session
from core.delivery.inbound import record_inbound
from core.delivery.statuses import apply_channel_events
from core.plugin_api import Channel, WebhookRequest
from core.plugins import get_host
from core.sandbox.service import record_request
from core.tenancy.errors import TenancyError
from core.tenancy.models import Tenant
from core.tenancy.plugin_settings import channel_context, enabled_plugins
from core.tenancy.tenants import get_tenant

router = APIRouter(include_in_schema=False)
_sandbox_apps: dict[str, Any] = {}
LOOPBACK_NAMES = frozenset({"localhost", "testclient"})


def _tenant_with_plugin(tenant: str, plugin: str) -> Tenant:
    with control_session() as session:
        try:
            row = get_tenant(session, tenant)
        except TenancyError as exc:
            raise HTTPException(404, str(exc)) from exc
        if plugin not in enabled_plugins(session, row, get_host()):
            raise HTTPException(404, f"Plugin {plugin!r} is not enabled for tenant {tenant!r}.")
        return row


def _channel(key: str) -> tuple[str, Channel]:
    registered = get_host().channels.get(key)
    if registered is None:
        raise HTTPException(404, f"Unknown channel {key!r}.")
    return registered.plugin, registered.item


def _is_loopback(host: str | None) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@router.api_route(
    "/sandbox/{tenant}/{channel}/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
)
async def sandbox(tenant: str, channel: str, path: str, request: Request) -> Response:
    """Pass a request to the channel's local fake provider and keep a record of the exchange."""
    if not _is_loopback(request.client.host if request.client else None):
        raise HTTPException(403, "Channel sandboxes answer on loopback only.")
    plugin, implementation = _channel(channel)
    row = await run_in_threadpool(_tenant_with_plugin, tenant, plugin)
    app = _sandbox_apps.get(channel)
    if app is None:
        app = _sandbox_apps[channel] = implementation.sandbox_app()
    if app is None:
        raise HTTPException(404, f"Channel {channel!r} has no sandbox.")
    body = await request.body()
    headers = {k: v for k, v in request.headers.items() if k.lower() not in {"host", "content-length"}}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        answer = await client.request(
            request.method, "/" + path, params=request.query_params, headers=headers, content=body
        )
    exchange = {"method": request.method, "path": "/" + path, "query": request.url.query,
                "headers": dict(request.headers), "body": body}  # fmt: skip
    await run_in_threadpool(
        record_request, row.database, channel, exchange, answer.status_code, answer.content
    )
    passthrough = {
        k: v for k, v in answer.headers.items() if k.lower() not in {"content-length", "transfer-encoding"}
    }
    return Response(answer.content, status_code=answer.status_code, headers=passthrough)


@router.api_route("/webhooks/{tenant}/{channel}", methods=["GET", "POST"])
async def webhook(tenant: str, channel: str, request: Request) -> Response:
    """A provider's callback, verified and translated by the channel.

    Its delivery events update the deliveries; customers' own messages become events on their
    profiles. Both are idempotent, so a provider replaying a callback changes nothing.
    """
    plugin, implementation = _channel(channel)
    row = await run_in_threadpool(_tenant_with_plugin, tenant, plugin)
    incoming = WebhookRequest(
        method=request.method, headers=dict(request.headers), query=dict(request.query_params),
        body=await request.body(),
    )  # fmt: skip

    def handle() -> Response:
        with control_session() as session:
            ctx = channel_context(session, row, get_host(), channel)
        answer = implementation.handle_webhook(ctx, incoming)
        inbound_event = implementation.capabilities.inbound_event
        if answer.events or (answer.inbound and inbound_event):
            with tenant_session(row.database) as session:
                apply_channel_events(session, channel, answer.events)
                if answer.inbound and inbound_event:
                    record_inbound(session, row.slug, channel, inbound_event, answer.inbound)
                session.commit()
        return Response(answer.body, status_code=answer.status_code, media_type=answer.media_type)

    return await run_in_threadpool(handle)


def mount_plugin_routers(app: FastAPI) -> None:
    """Mount every working plugin's routers under ``/x/{tenant}/{plugin}``, behind enablement."""
    for registered in get_host().routers:
        plugin = registered.plugin

        def enabled_for_tenant(tenant: str, _plugin: str = plugin) -> None:
            _tenant_with_plugin(tenant, _plugin)

        app.include_router(
            registered.item, prefix=f"/x/{{tenant}}/{plugin}", dependencies=[Depends(enabled_for_tenant)]
        )
