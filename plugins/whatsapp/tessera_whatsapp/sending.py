"""Sending a batch through ``POST /{version}/{phone_number_id}/messages``, paced per number."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from core.plugin_api import DeliveryResult, DeliveryStatus, OutboundMessage, claim, within_limit
from tessera_whatsapp.bodies import WhatsAppTemplate, message_body
from tessera_whatsapp.config import WhatsAppConfig
from tessera_whatsapp.errors import classify
from tessera_whatsapp.transport import LONGEST_CALL, Unreachable, post_json

# Sends in flight needed = rate x answer time: budget 100 ms a send (Meta answers in ~20-50 ms), so
# 1000/s gets 100 threads and 80/s gets 8.
SECONDS_PER_SEND = 0.1
MIN_WORKERS, MAX_WORKERS = 4, 128
TIMEOUT = httpx.Timeout(15.0, connect=5.0)
# Meta's pair limit: about one message every 6 s from a business number to one customer (131056).
PAIR_SECONDS = 6.0

_clients: dict[str, httpx.Client] = {}
_clients_lock = threading.Lock()


def client_for(base_url: str) -> httpx.Client:
    """The process's pooled HTTP client for one API base URL, for the template sync (sends use
    libcurl, :mod:`tessera_whatsapp.transport`)."""
    with _clients_lock:
        client = _clients.get(base_url)
        if client is None:
            limits = httpx.Limits(max_connections=MAX_WORKERS * 2, max_keepalive_connections=MAX_WORKERS)
            client = _clients[base_url] = httpx.Client(base_url=base_url, timeout=TIMEOUT, limits=limits)
        return client


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


def _failed(
    message: OutboundMessage, reason: str, detail: str, retryable: bool, after: float | None
) -> DeliveryResult:
    return DeliveryResult(delivery_id=message.delivery_id, status=DeliveryStatus.failed, reason_code=reason,
                          detail=detail[:1000], retryable=retryable, retry_after=after)  # fmt: skip


def result_of(message: OutboundMessage, response: httpx.Response) -> DeliveryResult:
    """The delivery result Meta's answer to one send means."""
    try:
        payload: Any = response.json()
    except ValueError:
        payload = None
    if response.status_code == 200 and isinstance(payload, dict) and payload.get("messages"):
        return DeliveryResult(
            delivery_id=message.delivery_id,
            status=DeliveryStatus.sent,
            provider_id=payload["messages"][0]["id"],
        )
    error = payload.get("error") if isinstance(payload, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    found = classify(code if isinstance(code, int) else None, response.status_code, _retry_after(response))
    text = error.get("message", "") if isinstance(error, dict) else response.text[:200]
    details = (error.get("error_data") or {}).get("details") if isinstance(error, dict) else None
    detail = f"HTTP {response.status_code}, Meta code {code}: {text}" + (f" ({details})" if details else "")
    return _failed(message, found.reason_code, detail, found.retryable, found.retry_after)


def base_url(config: WhatsAppConfig, sandbox: bool, sandbox_url: str) -> str:
    """Where the Graph API is: the tenant's sandbox, a configured gateway, or Meta."""
    if sandbox:
        return sandbox_url.rstrip("/")
    return (config.api_url or "https://graph.facebook.com").rstrip("/")


_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()
MAX_BATCH = 200  # the most messages the core hands ``deliver`` at once


def pool_for(workers: int) -> ThreadPoolExecutor:
    """The process's send threads for this many sends in flight, shared by every job thread.

    One pool, not one per batch: several send jobs of a process run at once, and a pool each would
    multiply the threads (and their Redis connections) for no more sends than the rate allows.
    """
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            pool = _pools[workers] = ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix="whatsapp-send"
            )
        return pool


def workers_for(rate: float, batch_size: int) -> int:
    """How many sends to keep in flight for a batch at ``rate`` messages a second."""
    wanted = max(MIN_WORKERS, math.ceil(rate * SECONDS_PER_SEND))
    return max(1, min(wanted, MAX_WORKERS, batch_size))


def deliver_batch(
    config: WhatsAppConfig,
    url: str,
    batch: list[OutboundMessage],
    prepare: Callable[[WhatsAppTemplate], WhatsAppTemplate] | None = None,
) -> list[DeliveryResult]:
    """Send each message (in parallel, never faster than the number's limit); a result each.

    ``prepare`` may adjust each template before it is sent (dynamic URL buttons' suffixes).
    """
    address = f"{url.rstrip('/')}/{config.api_version}/{config.phone_number_id}/messages"
    headers = {"Authorization": f"Bearer {config.access_token.get_secret_value()}"}
    # Meta counts a number's messages as they arrive: within_limit keeps any one second's arrivals
    # to the limit, across every worker process, whatever holds a send up on its way.
    number, limit = f"whatsapp:{config.phone_number_id}", config.messages_per_second

    def send(message: OutboundMessage) -> DeliveryResult:
        try:
            template = WhatsAppTemplate.model_validate(message.template)
        except ValueError as exc:
            return _failed(message, "invalid_content", str(exc), False, None)
        if prepare is not None:
            template = prepare(template)
        body = message_body(message.address, template)  # before its place: once placed, only the call
        try:
            wait = claim(f"{number}:{message.address}", PAIR_SECONDS)
            if wait > 0:
                detail = f"Sent to this customer less than {PAIR_SECONDS:g} s ago (Meta's pair rate limit)."
                return _failed(message, "pair_rate_limited", detail, True, wait)
            with within_limit(number, limit, LONGEST_CALL):
                try:
                    response = post_json(address, body, headers)
                except Unreachable as exc:  # timeouts, refused connections: Meta may be fine a moment later
                    return _failed(message, "network_error", f"Meta cannot be reached ({exc}).", True, None)
        except Exception as exc:  # noqa: BLE001 - Redis busy or down before the call: this message waits
            # Never raise from here: the core would retry the whole batch, sending its sent messages
            # twice (Meta has no idempotency key).
            return _failed(message, "pacing_unavailable", f"{type(exc).__name__}: {exc}", True, None)
        return result_of(message, response)

    if len(batch) <= 1:
        return [send(message) for message in batch]
    return list(pool_for(workers_for(limit, MAX_BATCH)).map(send, batch))
