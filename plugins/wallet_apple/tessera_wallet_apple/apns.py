"""Tell devices that a pass changed, through the Apple Push Notification service (APNs).

For each push token the device registered, APNs gets ``POST /3/device/{token}`` over HTTP/2 with
``apns-topic: <pass type identifier>`` and the empty JSON dictionary ``{}`` as body; the device then
asks the PassKit web service what changed. Authentication is the Pass Type ID certificate presented
as a TLS client certificate. In sandbox mode the push goes to the channel's own fake APNs mounted by
the core (:mod:`tessera_wallet_apple.sandbox`), over plain HTTP with a bearer header instead.

The public entry point is :func:`push_updates`; it returns a :class:`PushOutcome` or raises
:class:`ApnsUnavailable` (retry later) / :class:`ApnsRefused` (never retry), both of which carry
what was achieved before the failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import ssl
import tempfile
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import certifi
import httpx
from cryptography import x509

from core.plugin_api import ChannelContext, PermanentDeliveryError, TransientDeliveryError

log = logging.getLogger(__name__)
T = TypeVar("T")

PRODUCTION_URL = "https://api.push.apple.com"
# What APNs accepts as a device token: hex, 32 bytes today, up to 100 bytes allowed for the future.
DEVICE_TOKEN = re.compile(r"^[0-9A-Fa-f]{64,200}$")
# Streams in flight per call; HTTP/2 multiplexes them on one connection, and the server's
# SETTINGS_MAX_CONCURRENT_STREAMS still caps them below this if it is lower.
MAX_PARALLEL_PUSHES = 100
TIMEOUT = httpx.Timeout(10.0, pool=30.0)
# Keep the connection across calls: APNs asks providers to reuse connections, not reconnect per push.
LIMITS = httpx.Limits(keepalive_expiry=30.0)

# 410 means the device no longer has the pass's app state (Unregistered, ExpiredToken): always gone.
GONE_400_REASONS = frozenset({"BadDeviceToken"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
FIX_CERTIFICATE = "upload a current Pass Type ID certificate under Settings > Plugins > Apple Wallet"
HINTS = {
    "BadCertificate": FIX_CERTIFICATE,
    "BadCertificateEnvironment": FIX_CERTIFICATE,
    "Forbidden": FIX_CERTIFICATE,
    "TopicDisallowed": "the certificate does not cover this pass type identifier: " + FIX_CERTIFICATE,
    "BadTopic": "the topic must be the pass type identifier of the certificate",
    "DeviceTokenNotForTopic": "the topic must be the pass type identifier the devices registered for",
}


@dataclass(frozen=True)
class PushOutcome:
    """What APNs did with the tokens: accepted (``sent``) or no longer valid (``gone``).

    A ``gone`` token's registration must be deleted: the pass was removed, the device reset, or the
    token was never valid. Duplicate tokens are pushed once.
    """

    sent: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)


class _CarriesOutcome:
    """What a failed call still achieved, so the caller can delete ``gone`` registrations anyway."""

    outcome: PushOutcome
    failed: list[str]


class ApnsUnavailable(TransientDeliveryError, _CarriesOutcome):
    """APNs could not take some pushes now (rate limit, outage, network); retry them later.

    ``failed`` are the tokens to retry; ``outcome`` what the other tokens gave. Pushing a token
    again is harmless: the device only asks the web service for updates.
    """

    def __init__(self, message: str, *, reason_code: str, retry_after: float | None,
                 outcome: PushOutcome, failed: list[str]) -> None:  # fmt: skip
        super().__init__(message, reason_code=reason_code, retry_after=retry_after)
        self.outcome = outcome
        self.failed = failed


class ApnsRefused(PermanentDeliveryError, _CarriesOutcome):
    """APNs refused the pushes for a reason retrying will not fix (certificate, topic, request)."""

    def __init__(self, message: str, *, reason_code: str, outcome: PushOutcome, failed: list[str]) -> None:
        super().__init__(message, reason_code=reason_code)
        self.outcome = outcome
        self.failed = failed


@dataclass(frozen=True)
class _Reply:
    """APNs's answer for one token, or the transport error that stopped it."""

    token: str
    status: int | None
    reason: str = ""
    retry_after: float | None = None


def sandbox_credential(tenant: str) -> str:
    """The bearer value sent to the tenant's sandbox: names the tenant, deliberately not a secret."""
    return f"tessera-sandbox.{tenant}"


def push_updates(
    ctx: ChannelContext,
    identity_pem: tuple[bytes, bytes] | None,
    topic: str,
    tokens: list[str],
    *,
    base_url: str | None = None,
    ca_pem: bytes | None = None,
) -> PushOutcome:
    """Tell every device holding these push tokens that its pass changed; which tokens are gone.

    ``identity_pem`` is the Pass Type ID certificate and its unencrypted private key, as PEM (it may
    be None in sandbox mode, which does not use it). ``topic`` is the pass type identifier.
    Outside sandbox mode the pushes go to ``base_url`` (APNs production by default; wallet passes
    always use production) trusting ``ca_pem`` instead of the public CAs when given; in sandbox
    mode they go to ``ctx.sandbox_url``. All tokens are tried; then :class:`ApnsRefused` is raised
    if APNs refused any push for a lasting reason (403 certificate or topic, a malformed request),
    else :class:`ApnsUnavailable` if any could not be pushed now (429, 5xx, connection errors),
    with ``retry_after`` from APNs's ``Retry-After`` when it sent one.
    """
    unique = list(dict.fromkeys(tokens))
    # A token APNs could never accept (a device bug, or junk registered through the web service)
    # is not sent: it would at best answer BadDeviceToken, at worst end up at another path.
    malformed = [token for token in unique if not DEVICE_TOKEN.match(token)]
    valid = [token for token in unique if DEVICE_TOKEN.match(token)]
    if not valid:
        return PushOutcome(sent=[], gone=malformed)
    replies = _io.run(_push_all(ctx, identity_pem, topic, valid, base_url, ca_pem))
    return _conclude(topic, replies, malformed)


def close_clients(base_url: str | None = None) -> None:
    """Close the cached connections (to ``base_url`` only, when given): at shutdown, or in tests."""
    _io.run(_close_all(None if base_url is None else base_url.rstrip("/")))


# --- connections ------------------------------------------------------------------------------
class _IoLoop:
    """One event loop in a daemon thread that owns every cached connection and runs every push.

    HTTP/2 multiplexing wants one owner per connection; httpx's asyncio client is that owner, and
    callers in any thread hand their pushes to it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(work, self._running()).result()

    def _running(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                # A forked worker inherits the loop object but not its thread: start afresh.
                _clients.clear()
                _expiry.clear()
                self._loop, self._pid = asyncio.new_event_loop(), os.getpid()
                threading.Thread(target=self._loop.run_forever, name="apns-io", daemon=True).start()
            return self._loop


_io = _IoLoop()
# Touched only on the loop's thread, so no lock.
_clients: dict[tuple[str, ...], httpx.AsyncClient] = {}
_expiry: dict[tuple[str, ...], datetime] = {}


async def _close_all(url: str | None) -> None:
    """Close and forget the cached clients of ``url``, or all (on the loop, which owns them)."""
    keys = [key for key in _clients if url is None or key[1] == url]
    for key in keys:
        _expiry.pop(key, None)
        await _clients.pop(key).aclose()


async def _push_all(
    ctx: ChannelContext,
    identity_pem: tuple[bytes, bytes] | None,
    topic: str,
    tokens: list[str],
    base_url: str | None,
    ca_pem: bytes | None,
) -> list[_Reply]:
    """Push every token concurrently over the one connection; a reply per token, in order."""
    client, url, headers = _endpoint(ctx, identity_pem, topic, base_url, ca_pem)
    limit = asyncio.Semaphore(MAX_PARALLEL_PUSHES)

    async def one(token: str) -> _Reply:
        async with limit:
            return await _push_one(client, url, headers, token)

    return list(await asyncio.gather(*(one(token) for token in tokens)))


def _endpoint(
    ctx: ChannelContext,
    identity_pem: tuple[bytes, bytes] | None,
    topic: str,
    base_url: str | None,
    ca_pem: bytes | None,
) -> tuple[httpx.AsyncClient, str, dict[str, str]]:
    """The client to use, the base URL and the headers every push of this call carries."""
    headers = {"apns-topic": topic}
    if ctx.sandbox:
        # The core mounts the fake behind its own HTTP server, which cannot see TLS client
        # certificates: the fake asks for a bearer header instead.
        headers["authorization"] = f"bearer {sandbox_credential(ctx.tenant)}"
        url = ctx.sandbox_url.rstrip("/")
        key: tuple[str, ...] = ("sandbox", url, _digest(ca_pem))
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = httpx.AsyncClient(verify=_trust(ca_pem), timeout=TIMEOUT)
        return client, url, headers
    if identity_pem is None:
        raise PermanentDeliveryError(
            f"No Pass Type ID certificate to push updates of {topic}: {FIX_CERTIFICATE}.",
            reason_code="not_configured",
        )
    url = (base_url or PRODUCTION_URL).rstrip("/")
    key = ("apns", url, _digest(*identity_pem), _digest(ca_pem))
    client = _clients.get(key)
    if client is None:
        context = _trust(ca_pem)
        _expiry[key] = _load_identity(context, identity_pem, topic)
        # APNs speaks HTTP/2 only: no HTTP/1.1 fallback.
        client = _clients[key] = httpx.AsyncClient(
            verify=context, http1=False, http2=True, timeout=TIMEOUT, limits=LIMITS
        )
    # TLS 1.3 servers refuse an expired client certificate after the handshake, which reads as a
    # dropped connection (transient); saying so here makes it the permanent error it is.
    if _expiry[key] <= datetime.now(UTC):
        raise PermanentDeliveryError(
            f"The Pass Type ID certificate for {topic} expired on {_expiry[key]:%Y-%m-%d}: {FIX_CERTIFICATE}.",
            reason_code="certificate_expired",
        )
    return client, url, headers


def _digest(*parts: bytes | None) -> str:
    """A fingerprint for cache keys, so no certificate or key is kept as a key."""
    return hashlib.sha256(b"\0".join(part or b"" for part in parts)).hexdigest()


def _trust(ca_pem: bytes | None) -> ssl.SSLContext:
    """A client TLS context trusting ``ca_pem`` if given, else the public CAs httpx ships with."""
    if ca_pem is not None:
        return ssl.create_default_context(cadata=ca_pem.decode("ascii"))
    return ssl.create_default_context(cafile=certifi.where())


def _load_identity(context: ssl.SSLContext, identity_pem: tuple[bytes, bytes], topic: str) -> datetime:
    """Give the context the client certificate; when it expires.

    ssl reads certificates from files only, so one exists (mode 0600) just while it loads.
    """
    certificate, key = identity_pem
    try:
        expires = x509.load_pem_x509_certificate(certificate).not_valid_after_utc
    except ValueError:
        raise PermanentDeliveryError(
            f"The Pass Type ID certificate for {topic} is not a PEM certificate: {FIX_CERTIFICATE}.",
            reason_code="bad_certificate",
        ) from None
    handle, path = tempfile.mkstemp(prefix="tessera-apns-", suffix=".pem")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(certificate.rstrip(b"\n") + b"\n" + key)
        context.load_cert_chain(path)
    except ssl.SSLError as exc:
        raise PermanentDeliveryError(
            f"The Pass Type ID certificate for {topic} cannot be used ({exc.reason or exc}): {FIX_CERTIFICATE}.",
            reason_code="bad_certificate",
        ) from None
    finally:
        os.unlink(path)
    return expires


# --- one push and the verdict -----------------------------------------------------------------
async def _push_one(client: httpx.AsyncClient, url: str, headers: dict[str, str], token: str) -> _Reply:
    """Push one token; never raises, so the other tokens are still tried."""
    for attempt in (1, 2):
        try:
            response = await client.post(f"{url}/3/device/{token}", headers=headers, content=b"{}")
            break
        except httpx.HTTPError as exc:
            # A server closing the connection (HTTP/2 GOAWAY, idle timeout) drops the streams in
            # flight; one more try opens a new connection. Pushing a pass twice is harmless.
            if attempt == 2 or isinstance(exc, httpx.TimeoutException):
                return _Reply(token, None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    reason = ""
    if response.status_code != 200:
        with contextlib.suppress(ValueError, AttributeError):
            reason = str(json.loads(response.content).get("reason", ""))
    return _Reply(token, response.status_code, reason, _retry_after(response.headers.get("retry-after")))


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), if usable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _describe(reply: _Reply) -> str:
    """One reply as a person reads it: status, APNs reason and how to fix it."""
    status = "no answer" if reply.status is None else str(reply.status)
    hint = HINTS.get(reply.reason)
    return f"{status} {reply.reason}".strip() + (f" ({hint})" if hint else "")


def _conclude(topic: str, replies: list[_Reply], malformed: list[str]) -> PushOutcome:
    """Sort the replies into sent / gone / failed and raise if any failed."""
    sent = [r.token for r in replies if r.status == 200]
    gone = malformed + [
        r.token for r in replies if r.status == 410 or (r.status == 400 and r.reason in GONE_400_REASONS)
    ]
    done = set(sent) | set(gone)
    unavailable = [r for r in replies if r.status is None or r.status in RETRY_STATUSES]
    refused = [
        r for r in replies if r.token not in done and r.status is not None and r.status not in RETRY_STATUSES
    ]
    failed = [r.token for r in replies if r.token not in done]
    outcome = PushOutcome(sent=sent, gone=gone)
    log.debug("APNs %s: %d sent, %d gone, %d failed", topic, len(sent), len(gone), len(failed))
    if refused:
        # Lasting refusals win over temporary ones: retrying would only meet them again.
        first = refused[0]
        raise ApnsRefused(
            f"APNs refused {len(refused)} of {len(replies)} pushes for {topic}: {_describe(first)}.",
            reason_code="unauthorized" if first.status == 403 else "rejected",
            outcome=outcome,
            failed=failed,
        )
    if unavailable:
        waits = [r.retry_after for r in unavailable if r.retry_after is not None]
        limited = any(r.status == 429 for r in unavailable)
        raise ApnsUnavailable(
            f"APNs could not take {len(unavailable)} of {len(replies)} pushes for {topic} now: "
            f"{_describe(unavailable[0])}.",
            reason_code="rate_limited" if limited else "provider_unavailable",
            retry_after=max(waits) if waits else None,
            outcome=outcome,
            failed=failed,
        )
    return outcome
