"""Sending a batch to FCM: one ``messages:send`` call per message and device, a bounded number in flight.

FCM's batch endpoint is shut down, so a batch fans out into calls made by libcurl
(:mod:`tessera_push_fcm.transport`), ``concurrency`` at a time. One access token serves the whole
batch; a 401 drops it and the calls it refused are tried once more with a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import httpx
import orjson
from pydantic import ValidationError
from tessera_google_auth import ServiceAccount, TokenCache

from core.plugin_api import DeliveryError, DeliveryResult, OutboundMessage, TransientDeliveryError
from tessera_push_fcm.devices import DeviceOutcome, combine, device_tokens, no_device
from tessera_push_fcm.errors import failed, parse_failure, result_of
from tessera_push_fcm.message import FcmTemplate, for_token, send_request
from tessera_push_fcm.transport import Answer, Post, Unreachable, post_all

TIMEOUT = httpx.Timeout(20.0, connect=5.0)
MAX_CONNECTIONS = 64  # the most concurrency the config allows
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
# Access tokens per service account, replaced 5 minutes before expiry so none expires mid-send.
TOKENS = TokenCache(SCOPE, margin=300)


@lru_cache(maxsize=16)
def http_client(base_url: str) -> httpx.Client:
    """One pooled keep-alive client per API address, for the token endpoint (sends use libcurl)."""
    limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)
    return httpx.Client(base_url=base_url, timeout=TIMEOUT, limits=limits)


@dataclass(frozen=True)
class _Call:
    """One ``messages:send`` call to make: which message, which device, the body for it."""

    delivery_id: str
    token: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Sender:
    """Sends for one Firebase project as one service account, through ``api_url``."""

    account: ServiceAccount
    project_id: str
    api_url: str
    token_uri: str
    concurrency: int

    def deliver(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        """One result per message, each sent to every live device of its profile.

        Token endpoint failures raise a :class:`DeliveryError` for the whole batch.
        """
        if not batch:
            return []
        http = http_client(self.api_url.rstrip("/"))
        TOKENS.get(http, self.account, self.token_uri)  # fail the whole batch early if there is no token
        results: dict[str, DeliveryResult] = {}
        calls: list[_Call] = []
        for message in batch:
            planned = _calls(message)
            if isinstance(planned, DeliveryResult):
                results[message.delivery_id] = planned
            else:
                calls.extend(planned)
        outcomes: dict[str, list[DeviceOutcome]] = {}
        for call, outcome in zip(calls, self._send_all(http, calls), strict=True):
            outcomes.setdefault(call.delivery_id, []).append(outcome)
        for delivery_id, devices in outcomes.items():
            results[delivery_id] = combine(delivery_id, devices)
        return [results[message.delivery_id] for message in batch]

    def _send_all(self, http: httpx.Client, calls: list[_Call]) -> list[DeviceOutcome]:
        """Every call's outcome, in order, ``concurrency`` of them in flight at once.

        One access token serves them all; calls refused with a plain 401 (our token, expired or
        revoked early) go once more with a new one.
        """
        url = f"{self.api_url.rstrip('/')}/v1/projects/{self.project_id}/messages:send"
        outcomes: dict[int, DeviceOutcome] = {}
        todo = list(range(len(calls)))
        for attempt in (1, 2):
            try:
                # Cached: only a renewal calls the token endpoint.
                token = TOKENS.get(http, self.account, self.token_uri)
            except DeliveryError as exc:
                for i in todo:
                    result = failed(calls[i].delivery_id, exc.reason_code, str(exc), retry=_retry(exc))
                    outcomes[i] = _refused(calls[i], result)
                break
            headers = [f"Authorization: Bearer {token}", "Content-Type: application/json"]
            answers = post_all(
                [Post(url, orjson.dumps(calls[i].body), headers) for i in todo], self.concurrency
            )
            again = []
            for i, answer in zip(todo, answers, strict=True):
                outcome = _outcome(calls[i], answer, renewable=attempt == 1)
                if outcome is None:
                    again.append(i)
                else:
                    outcomes[i] = outcome
            if again:
                TOKENS.drop(self.account, self.token_uri, token)
            todo = again
        return [outcomes[i] for i in range(len(calls))]


def _outcome(call: _Call, answer: Answer | Unreachable, renewable: bool) -> DeviceOutcome | None:
    """How one call fared; None to try it again with a new access token (``renewable`` and a plain
    401, without an FcmError: our token, expired or revoked early)."""
    if isinstance(answer, Unreachable):
        reason = f"FCM cannot be reached ({answer.reason})."
        return _refused(call, failed(call.delivery_id, "unavailable", reason, retry=True))
    if answer.status == 200:
        return DeviceOutcome(call.token, name=_name(answer.content))
    failure = parse_failure(answer.response())
    if answer.status == 401 and not failure.error_code and renewable:
        return None
    return _refused(call, result_of(call.delivery_id, failure))


def _calls(message: OutboundMessage) -> list[_Call] | DeliveryResult:
    """The calls that send ``message`` to each device of its profile, or why it cannot go."""
    try:
        body = send_request(FcmTemplate.model_validate(message.template), message.address, message.open_url)
    except ValidationError as exc:
        return failed(message.delivery_id, "invalid_content", str(exc))
    tokens = device_tokens(message)
    if not tokens:
        return no_device(message.delivery_id)
    return [_Call(message.delivery_id, token, for_token(body, token)) for token in tokens]


def _refused(call: _Call, result: DeliveryResult) -> DeviceOutcome:
    return DeviceOutcome(call.token, failure=result)


def _retry(exc: DeliveryError) -> float | None | bool:
    """How a token error retries: not at all when permanent, else after its delay."""
    if not isinstance(exc, TransientDeliveryError):
        return False
    return exc.retry_after if exc.retry_after is not None else True


def _name(content: bytes) -> str | None:
    """FCM's message name from a success answer's body (None if a gateway answered something else)."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    name = body.get("name") if isinstance(body, dict) else None
    return str(name) if name else None
