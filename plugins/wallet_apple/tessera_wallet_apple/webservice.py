"""The PassKit web service, exactly as Apple specifies it: what devices call about installed passes.

Mounted by the core at ``/x/{tenant}/wallet_apple``, which is the ``webServiceURL`` put in every
pass; Apple appends ``/v1/...``:

- ``POST /v1/devices/{device}/registrations/{passType}/{serial}`` with ``{"pushToken"}`` and
  ``Authorization: ApplePass <token>``: 201 registered, 200 already registered, 401 bad token or
  unknown serial, 400 malformed body.
- ``DELETE`` on the same path: 200 unregistered (also when it was not registered), 401.
- ``GET /v1/devices/{device}/registrations/{passType}?passesUpdatedSince=<tag>``: 200
  ``{"serialNumbers", "lastUpdated"}``, 204 when nothing changed.
- ``GET /v1/passes/{passType}/{serial}``: 200 the signed pass with ``Last-Modified``, 304 when
  ``If-Modified-Since`` is not older, 401.
- ``POST /v1/log`` with ``{"logs": [...]}``: 200.

A pass type identifier that is not this tenant's answers 404 everywhere.
"""

from __future__ import annotations

import json
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from core.plugin_api import pass_registry

CHANNEL = "wallet_apple"
MAX_BODY = 64 * 1024
router = APIRouter(include_in_schema=False)


def _token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme == "ApplePass" else None


async def _json_body(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, "The body is too large.")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPException(400, "The body is not JSON.") from exc


def _registry(tenant: str, pass_type: str) -> Any:
    registry = pass_registry(tenant, CHANNEL)
    if registry.pass_type_identifier() != pass_type:
        raise HTTPException(404, "Unknown pass type identifier.")
    return registry


@router.post("/v1/devices/{device_id}/registrations/{pass_type}/{serial}")
async def register_device(
    tenant: str, device_id: str, pass_type: str, serial: str, request: Request
) -> Response:
    """Register a device to receive push notifications for a pass."""
    body = await _json_body(request)
    push_token = body.get("pushToken") if isinstance(body, dict) else None
    if not isinstance(push_token, str) or not push_token.strip() or len(push_token) > 400:
        raise HTTPException(400, 'The body must be {"pushToken": "<token>"}.')
    registry = await run_in_threadpool(_registry, tenant, pass_type)
    outcome = await run_in_threadpool(registry.register, serial, _token(request), device_id[:200], push_token)
    if outcome == "unauthorized":
        return Response(status_code=401)
    return Response(status_code=201 if outcome == "created" else 200)


@router.delete("/v1/devices/{device_id}/registrations/{pass_type}/{serial}")
async def unregister_device(
    tenant: str, device_id: str, pass_type: str, serial: str, request: Request
) -> Response:
    """Unregister a device so it no longer receives updates for a pass."""
    registry = await run_in_threadpool(_registry, tenant, pass_type)
    outcome = await run_in_threadpool(registry.unregister, serial, _token(request), device_id[:200])
    return Response(status_code=401 if outcome == "unauthorized" else 200)


@router.get("/v1/devices/{device_id}/registrations/{pass_type}")
async def updated_serials(tenant: str, device_id: str, pass_type: str, request: Request) -> Response:
    """The serial numbers of this device's passes that changed since ``passesUpdatedSince``."""
    registry = await run_in_threadpool(_registry, tenant, pass_type)
    since = request.query_params.get("passesUpdatedSince")
    updated = await run_in_threadpool(registry.updated_since, device_id[:200], since)
    if not updated.serials:
        return Response(status_code=204)
    return JSONResponse({"serialNumbers": updated.serials, "lastUpdated": updated.tag})


@router.get("/v1/passes/{pass_type}/{serial}")
async def latest_pass(tenant: str, pass_type: str, serial: str, request: Request) -> Response:
    """The latest version of a pass, or 304 when the device's copy is current."""
    registry = await run_in_threadpool(_registry, tenant, pass_type)
    try:
        latest = await run_in_threadpool(registry.latest, serial, _token(request))
    except ValueError as exc:  # the tenant's wallet cannot build passes now (certificate, template)
        raise HTTPException(503, str(exc)) from exc
    if latest is None:
        return Response(status_code=401)
    modified = latest.last_modified.replace(microsecond=0)
    headers = {"Last-Modified": format_datetime(modified, usegmt=True), "Cache-Control": "no-cache"}
    since = request.headers.get("if-modified-since")
    if since:
        try:
            if modified <= parsedate_to_datetime(since):
                return Response(status_code=304, headers=headers)
        except (TypeError, ValueError):
            pass  # an unreadable date is no date: send the pass
    file = latest.file
    return Response(file.content, media_type=file.media_type, headers=headers)


@router.post("/v1/log")
async def device_log(tenant: str, request: Request) -> Response:
    """Keep the messages a device sends about problems with its passes."""
    body = await _json_body(request)
    logs = body.get("logs") if isinstance(body, dict) else None
    if not isinstance(logs, list) or not all(isinstance(m, str) for m in logs):
        raise HTTPException(400, 'The body must be {"logs": ["message", ...]}.')
    registry = pass_registry(tenant, CHANNEL)
    await run_in_threadpool(registry.log, logs)
    return Response(status_code=200)
