"""Meta's error codes, classified into what the core does next (retry or not, and a reason code)."""

from __future__ import annotations

from dataclasses import dataclass

RATE_LIMIT_CODES = {4, 80007, 130429, 131056}
TEMPORARY_CODES = {1, 2, 131000, 131016}
TEMPLATE_REASONS = {
    132000: "template_parameter_mismatch",
    132001: "template_not_found",
    132005: "template_text_too_long",
    132007: "template_format_policy",
    132012: "template_parameter_format",
    132015: "template_paused",
    132016: "template_disabled",
}
PERMANENT_REASONS = {
    131047: "outside_window",
    131026: "undeliverable",
    131050: "marketing_opt_out",
    190: "credentials_refused",
}
# Meta's advice: wait before retrying a rate limit even when no Retry-After header says how long.
DEFAULT_RETRY_AFTER = {130429: 1.0, 131056: 6.0, 80007: 60.0, 4: 60.0}


@dataclass(frozen=True)
class Classified:
    """What one Meta error means for the delivery."""

    reason_code: str
    retryable: bool
    retry_after: float | None = None


def classify(code: int | None, http_status: int, retry_after: float | None = None) -> Classified:
    """The reason code and retryability of a Graph API error ``code`` answered with ``http_status``."""
    if code in RATE_LIMIT_CODES:
        wait = retry_after if retry_after is not None else DEFAULT_RETRY_AFTER[code]
        return Classified("pair_rate_limited" if code == 131056 else "rate_limited", True, wait)
    if code in PERMANENT_REASONS:
        return Classified(PERMANENT_REASONS[code], False)
    if code is not None and 132000 <= code <= 132016:
        return Classified(TEMPLATE_REASONS.get(code, "template_rejected"), False)
    if code in TEMPORARY_CODES or http_status >= 500:
        return Classified("provider_unavailable", True, retry_after)
    return Classified(f"meta_error_{code}" if code is not None else "rejected", False)
