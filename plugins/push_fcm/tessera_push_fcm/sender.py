"""Sending a batch to FCM: one ``messages:send`` call per message, a bounded number in flight.

FCM's batch endpoint is shut down, so a batch fans out over one pooled keep-alive httpx client
(thread-safe) from a thread pool. One access token serves the whole batch; a 401 drops it and the
message is tried once more with a new one.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import httpx
from pydantic import ValidationError

from core.plugin_api import (
    DeliveryError,
    DeliveryResult,
    DeliveryStatus,
    OutboundMessage,
    TransientDeliveryError,
)
from tessera_push_fcm.auth import TOKENS, ServiceAccount
from tessera_push_fcm.errors import failed, parse_failure, result_of
from tessera_push_fcm.message import FcmTemplate, send_request

TIMEOUT = httpx.Timeout(20.0, connect=5.0)
MAX_CONNECTIONS = 64  # the most concurrency the config allows


@lru_cache(maxsize=16)
def http_client(base_url: str) -> httpx.Client:
    """One pooled keep-alive client per API address, shared by every thread and batch."""
    limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)
    return httpx.Client(base_url=base_url, timeout=TIMEOUT, limits=limits)


@dataclass(frozen=True)
class Sender:
    """Sends for one Firebase project as one service account, through ``api_url``."""

    account: ServiceAccount
    project_id: str
    api_url: str
    token_uri: str
    concurrency: int

    def deliver(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        """One result per message; token endpoint failures raise a :class:`DeliveryError` for all."""
        if not batch:
            return []
        http = http_client(self.api_url.rstrip("/"))
        TOKENS.get(http, self.account, self.token_uri)  # fail the whole batch early if there is no token
        workers = min(self.concurrency, len(batch))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fcm-send") as pool:
            return list(pool.map(lambda message: self.send_one(http, message), batch))

    def send_one(self, http: httpx.Client, message: OutboundMessage) -> DeliveryResult:
        """Send one message; its result (sent with FCM's message name, or why not)."""
        try:
            body = send_request(FcmTemplate.model_validate(message.template), message.address)
        except ValidationError as exc:
            return failed(message.delivery_id, "invalid_content", str(exc))
        path = f"/v1/projects/{self.project_id}/messages:send"
        for attempt in (1, 2):
            try:
                token = TOKENS.get(http, self.account, self.token_uri)
            except DeliveryError as exc:
                return failed(message.delivery_id, exc.reason_code, str(exc), retry=_retry(exc))
            try:
                answer = http.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
            except httpx.HTTPError as exc:
                return failed(
                    message.delivery_id, "unavailable", f"FCM cannot be reached ({exc}).", retry=True
                )
            if answer.status_code == 200:
                return DeliveryResult(
                    delivery_id=message.delivery_id, status=DeliveryStatus.sent, provider_id=_name(answer)
                )
            failure = parse_failure(answer)
            # A plain 401 (no FcmError) is our token: expired or revoked early. A new one, once.
            if answer.status_code == 401 and not failure.error_code and attempt == 1:
                TOKENS.drop(self.account, self.token_uri, token)
                continue
            return result_of(message.delivery_id, failure)
        raise AssertionError("unreachable: the second attempt always returns")


def _retry(exc: DeliveryError) -> float | None | bool:
    """How a token error retries: not at all when permanent, else after its delay."""
    if not isinstance(exc, TransientDeliveryError):
        return False
    return exc.retry_after if exc.retry_after is not None else True


def _name(answer: httpx.Response) -> str | None:
    """FCM's message name from a success answer (None if a gateway answered something else)."""
    try:
        body = answer.json()
    except ValueError:
        return None
    name = body.get("name") if isinstance(body, dict) else None
    return str(name) if name else None
