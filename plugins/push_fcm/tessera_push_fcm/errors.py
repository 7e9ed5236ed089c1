"""What an FCM answer means for one message, as Firebase documents its errors.

Classified by the ``FcmError`` detail's ``errorCode`` first, then Google's ``status``, then the
HTTP status (the order of the official Admin SDK). Message texts are only shown, never matched,
except to tell a bad registration token from another bad argument (FCM gives no other signal).
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from typing import Any

import httpx

from core.plugin_api import DeliveryResult, DeliveryStatus

FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
QUOTA_BACKOFF = 60.0  # seconds: Firebase asks for at least a minute after QUOTA_EXCEEDED without Retry-After
TOKEN_GONE = "token_gone"  # the registration token is dead: never retry, the device list should drop it


@dataclass(frozen=True)
class FcmFailure:
    """An error answer from FCM: HTTP status, Google's status, FCM's error code, message, Retry-After."""

    http_status: int
    status: str
    error_code: str
    message: str
    retry_after: float | None
    token_field: bool  # a field violation names message.token


def parse_failure(answer: httpx.Response) -> FcmFailure:
    """The error in an FCM answer's ``google.rpc.Status`` envelope (tolerant of other bodies)."""
    try:
        body: Any = answer.json()
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    code = next((str(d.get("errorCode", "")) for d in details if d.get("@type") == FCM_ERROR_TYPE), "")
    fields = [
        str(v.get("field", ""))
        for d in details
        if d.get("@type") == BAD_REQUEST_TYPE
        for v in d.get("fieldViolations") or []
        if isinstance(v, dict)
    ]
    return FcmFailure(
        http_status=answer.status_code,
        status=str(error.get("status", "")),
        error_code=code,
        message=str(error.get("message") or answer.text[:300] or answer.reason_phrase)[:500],
        retry_after=retry_after(answer.headers.get("retry-after")),
        token_field=any(field in {"message.token", "token"} for field in fields),
    )


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), if any."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def failed(
    delivery_id: str, reason: str, detail: str, *, retry: float | None | bool = False
) -> DeliveryResult:
    """A failed result; ``retry`` is False (permanent), True (retry) or the seconds to wait."""
    retryable = retry is not False
    wait = None if isinstance(retry, bool) else retry
    return DeliveryResult(
        delivery_id=delivery_id,
        status=DeliveryStatus.failed,
        reason_code=reason,
        detail=detail[:1000],
        retryable=retryable,
        retry_after=wait,
    )


def result_of(delivery_id: str, failure: FcmFailure) -> DeliveryResult:
    """The delivery result an FCM error means for one message."""
    code, status, http = failure.error_code, failure.status, failure.http_status
    text = failure.message
    if code == "UNREGISTERED" or (not code and http == 404):
        return failed(delivery_id, TOKEN_GONE, f"FCM: the registration token is no longer valid ({text}).")
    if code == "INVALID_ARGUMENT" or status == "INVALID_ARGUMENT" or (not code and http == 400):
        if failure.token_field or "registration token" in text.lower():
            return failed(delivery_id, TOKEN_GONE, f"FCM: not a valid registration token ({text}).")
        return failed(delivery_id, "invalid_argument", f"FCM refused the message: {text}")
    if code == "SENDER_ID_MISMATCH":
        return failed(
            delivery_id, "sender_id_mismatch", f"FCM: the token belongs to another Firebase project ({text})."
        )
    if code in {"THIRD_PARTY_AUTH_ERROR", "APNS_AUTH_ERROR"}:
        return failed(
            delivery_id,
            "third_party_auth_error",
            f"FCM: the APNs or Web Push credentials in the Firebase console are invalid ({text}).",
        )
    if code == "QUOTA_EXCEEDED" or http == 429:
        wait = failure.retry_after if failure.retry_after is not None else QUOTA_BACKOFF
        return failed(delivery_id, "quota_exceeded", f"FCM: sending quota exceeded ({text}).", retry=wait)
    if code in {"UNAVAILABLE", "INTERNAL"} or http >= 500:
        reason = "internal" if (code == "INTERNAL" or http == 500) else "unavailable"
        return failed(delivery_id, reason, f"FCM answered {http}: {text}", retry=failure.retry_after or True)
    if http == 401:
        return failed(delivery_id, "credentials_refused", f"FCM refused the service account's token: {text}")
    if http == 403:
        return failed(
            delivery_id,
            "permission_denied",
            "The service account may not send for this project "
            f"(it needs the role Firebase Cloud Messaging Admin): {text}",
        )
    return failed(delivery_id, (code or status or "provider_error").lower(), f"FCM answered {http}: {text}")
