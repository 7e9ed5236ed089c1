"""Segment-compatible ingestion: ``POST /v1/{identify,track,page,screen,group,alias,batch}``.

Authentication is the tenant's write key, sent as the HTTP Basic user name (password empty or
ignored) or as ``writeKey`` in the JSON body, as Segment allows; these routes are public to the
permission guard for that reason. Answers (JSON; Segment's and RudderStack's SDKs read ``code``
and ``message`` of an error):

- 200 ``{"success": true}`` for one event; for a batch
  ``{"success": true, "accepted": N, "duplicates": D, "rejected": [{"index": i, "reason": "..."}]}``
  (the valid events of a batch are kept). The events are committed before the answer: requests
  arriving together share one transaction (:mod:`core.ingest.committer`), each answered with
  its own counts.
- 400 not JSON, not an object, or (one-event routes) an invalid event; nothing is stored.
- 401 missing, unknown or revoked write key (a revoked key stops working within a second). 413 larger than 32 KB per event or 500 KB per batch.
- 415 a ``Content-Encoding`` other than gzip (RudderStack's SDK gzips by default).
- 503 the tenant database could not store the events (SDKs retry).

Bodies are never read past the limit: the ``Content-Length`` is checked first, then the stream is
read up to the limit, and a gzip body is inflated only up to the limit.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
import zlib
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from core.db.engines import control_session
from core.ingest import service
from core.ingest.committer import GroupCommitter
from core.ingest.schemas import EVENT_MODELS, iso_timestamp
from core.tenancy.keys import WriteKeyTenant, write_key_tenant

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["ingest"])

COMMITTER = GroupCommitter()  # one per server process: concurrent requests share transactions
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024


def _loads(body: bytes) -> Any:
    return orjson.loads(body)  # refuses NaN and Infinity by itself


class IngestError(Exception):
    """An answer other than 200, with Segment's error shape."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> JSONResponse:
        """The JSON answer (401 also names the Basic scheme)."""
        headers = {"WWW-Authenticate": 'Basic realm="write key"'} if self.status == 401 else None
        body = {"success": False, "code": self.code, "message": self.message}
        return JSONResponse(body, status_code=self.status, headers=headers)


def _too_large(limit: int) -> IngestError:
    what = "an event" if limit == MAX_EVENT_BYTES else "a batch"
    return IngestError(
        413, "payload_too_large", f"The body is larger than {limit // 1024} KB, the limit of {what}."
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The (inflated) body, read no further than ``limit`` bytes; 413 beyond, 415 for odd encodings."""
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity", "gzip"):
        raise IngestError(
            415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported; use gzip."
        )
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _too_large(limit)
        except ValueError:
            raise IngestError(400, "invalid_request", "The Content-Length header is not a number.") from None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    if encoding != "gzip":
        return bytes(body)
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(bytes(body), limit + 1)
    except zlib.error as exc:
        raise IngestError(400, "invalid_gzip", f"The gzip body cannot be inflated: {exc}.") from None
    if len(inflated) > limit:
        raise _too_large(limit)
    if not inflater.eof:
        raise IngestError(400, "invalid_gzip", "The gzip body is truncated.")
    return inflated


def _basic_user(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise IngestError(
            401, "invalid_write_key", "Malformed Basic authorization: send the write key as the user name."
        ) from None
    user = decoded.partition(":")[0]
    return user or None


# Known keys are remembered briefly: the lookup was a sixth of a request's work. A revoked key
# therefore keeps working for up to this long in each server process; unknown keys are not kept.
WRITE_KEY_CACHE_SECONDS = 1.0
_known_keys: dict[str, tuple[float, WriteKeyTenant]] = {}


def _tenant_of(write_key: str) -> WriteKeyTenant:
    remembered = _known_keys.get(write_key)
    if remembered is not None and remembered[0] > time.monotonic():
        return remembered[1]
    with control_session() as session:
        tenant = write_key_tenant(session, write_key)
    if tenant is None:
        _known_keys.pop(write_key, None)
        raise IngestError(401, "invalid_write_key", "Unknown or revoked write key.")
    if len(_known_keys) > 10_000:  # bounded: forget everything rather than grow without end
        _known_keys.clear()
    _known_keys[write_key] = (time.monotonic() + WRITE_KEY_CACHE_SECONDS, tenant)
    return tenant


def _parse(body: bytes) -> dict[str, Any]:
    try:
        payload = _loads(body)
    except (ValueError, RecursionError) as exc:
        raise IngestError(400, "invalid_json", f"The body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise IngestError(400, "invalid_json", "The body must be a JSON object.")
    return payload


def _object(payload: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = payload.get(name)
    if value is not None and not isinstance(value, dict):
        raise IngestError(400, "invalid_batch", f"The batch's {name} must be an object.")
    return value


def _prepare(kind: str, header_key: str | None, body: bytes) -> tuple[WriteKeyTenant, service.Prepared]:
    """Everything before storing, run in a worker thread: parse, authenticate, validate."""
    tenant = _tenant_of(header_key) if header_key else None
    payload = _parse(body)
    if tenant is None:
        body_key = payload.get("writeKey")
        if not isinstance(body_key, str) or not body_key:
            raise IngestError(
                401, "invalid_write_key",
                "Missing write key: send it as the HTTP Basic user name (or as writeKey in the body).",
            )  # fmt: skip
        tenant = _tenant_of(body_key)
    options: dict[str, Any] = {}
    if kind == "batch":
        items = payload.get("batch")
        if not isinstance(items, list):
            raise IngestError(400, "invalid_batch", 'The body must have "batch": an array of events.')
        try:
            sent_at = iso_timestamp(payload.get("sentAt"))
        except ValueError as exc:
            raise IngestError(400, "invalid_batch", f"The batch's sentAt {exc}.") from None
        options = {
            "shared_context": _object(payload, "context"),
            "shared_integrations": _object(payload, "integrations"),
            "sent_at": sent_at,
            "max_event_bytes": MAX_EVENT_BYTES,
        }
        default_type = None
    else:
        payload["type"] = kind  # the route decides the type, as in Segment's API
        items, default_type = [payload], kind
    prepared = service.validate(items, default_type, "api", **options)
    if prepared.rejected:
        log.info("tenant %s: %d event(s) rejected, first: %s", tenant.slug, len(prepared.rejected),
                 prepared.rejected[0])  # fmt: skip
        if kind != "batch":
            raise IngestError(400, "invalid_event", prepared.rejected[0]["reason"])
    return tenant, prepared


async def _handle(request: Request, kind: str) -> Response:
    try:
        header_key = _basic_user(request)
        body = await read_body(request, MAX_BATCH_BYTES if kind == "batch" else MAX_EVENT_BYTES)
        tenant, prepared = await run_in_threadpool(_prepare, kind, header_key, body)
        try:
            result = await COMMITTER.submit(tenant.slug, tenant.database, prepared)
        except SQLAlchemyError:
            log.exception("storing events for tenant %s failed", tenant.slug)
            raise IngestError(503, "unavailable", "The events could not be stored; retry later.") from None
    except IngestError as exc:
        return exc.response()
    if kind != "batch":
        return JSONResponse({"success": True})
    return JSONResponse({
        "success": True, "accepted": result.accepted, "duplicates": result.duplicates, "rejected": result.rejected,
    })  # fmt: skip


def _request_body(kind: str) -> dict[str, Any]:
    if kind == "batch":
        schema: dict[str, Any] = {
            "type": "object",
            "required": ["batch"],
            "properties": {
                "batch": {"type": "array", "items": {"type": "object"}, "description": "Events with a type."},
                "context": {"type": "object"},
                "integrations": {"type": "object"},
                "sentAt": {"type": "string", "format": "date-time"},
                "writeKey": {"type": "string"},
            },
        }
    else:
        schema = EVENT_MODELS[kind].model_json_schema(
            by_alias=True, ref_template="#/components/schemas/{model}"
        )
        schema.pop("$defs", None)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _route(kind: str) -> None:
    async def endpoint(request: Request) -> Response:
        return await _handle(request, kind)

    endpoint.__name__ = f"ingest_{kind}"
    endpoint.__doc__ = (
        "Store a batch of events of any type (200 with the indexes and reasons of refused ones)."
        if kind == "batch"
        else f"Store one {kind} event (Segment HTTP Tracking API)."
    )
    router.add_api_route(f"/{kind}", endpoint, methods=["POST"], openapi_extra=_request_body(kind))


for _kind in (*EVENT_MODELS, "batch"):
    _route(_kind)
