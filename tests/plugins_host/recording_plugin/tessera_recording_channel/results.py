"""How the provider's answers become :class:`DeliveryResult` s (pure functions, no I/O)."""

from __future__ import annotations

import json
import time
from email.utils import parsedate_to_datetime
from typing import Any

from core.plugin_api import DeliveryResult, DeliveryStatus


def retry_after_seconds(header: str | None) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds (delta-seconds or an HTTP date)."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(header).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _json(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _error(body: bytes) -> tuple[str | None, str | None]:
    # The provider's errors are {"error": {"code", "message"}}; anything else has neither.
    error = _json(body).get("error")
    if not isinstance(error, dict):
        return None, None
    code, message = error.get("code"), error.get("message")
    return (code if isinstance(code, str) else None), (message if isinstance(message, str) else None)


def unreachable(delivery_id: str, why: str) -> DeliveryResult:
    """The result of a send that got no answer (connection refused, reset, timed out)."""
    return DeliveryResult(
        delivery_id=delivery_id, status=DeliveryStatus.failed, reason_code="provider_unavailable",
        detail=f"The provider did not answer: {why}"[:500], retryable=True,
    )  # fmt: skip


def from_answer(
    delivery_id: str, status: int, body: bytes, retry_after: str | None, address: str | None = None
) -> DeliveryResult:
    """The result of one ``POST /v1/messages`` to ``address`` answered with HTTP ``status`` and ``body``.

    The error code ``recipient_gone`` means the address no longer exists: it is reported gone.
    """
    if 200 <= status < 300:
        provider_id = _json(body).get("id")
        return DeliveryResult(
            delivery_id=delivery_id, status=DeliveryStatus.sent,
            provider_id=provider_id if isinstance(provider_id, str) else None,
        )  # fmt: skip
    code, message = _error(body)
    detail = (message or f"The provider answered HTTP {status}.")[:500]
    failed = {"delivery_id": delivery_id, "status": DeliveryStatus.failed, "detail": detail}
    if status == 429:
        return DeliveryResult(**failed, reason_code="rate_limited", retryable=True,
                              retry_after=retry_after_seconds(retry_after))  # fmt: skip
    if status >= 500:
        return DeliveryResult(**failed, reason_code="provider_unavailable", retryable=True,
                              retry_after=retry_after_seconds(retry_after))  # fmt: skip
    if status == 401:  # whatever the body says: the account's key is refused
        return DeliveryResult(**failed, reason_code="unauthorized")
    if code == "recipient_gone" and address:
        return DeliveryResult(**failed, reason_code=code, gone_addresses=[address])
    return DeliveryResult(**failed, reason_code=code or f"http_{status}")
