"""Tracked links: every link in a sent message goes through Tessera, which records the click.

A tracked link is ``{public_url}/l/{tenant}/{token}``; the token names the delivery and the link's
index in it, signed so nobody can forge clicks for other deliveries. An open-tracking address
(``/o/{tenant}/{token}``, called by apps when a push notification is opened) is signed the same way. The targets stay on the
delivery row (``links``), so personalized URLs need no extra table.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping

from core.settings import get_settings

# http(s) URLs up to whitespace, quotes or angle brackets; a trailing full stop or comma is prose.
URL = re.compile(r"""https?://[^\s"'<>]+[^\s"'<>.,;:!?)]""")


def _signature(tenant: str, delivery_id: int, index: int, purpose: str = "link") -> str:
    key = get_settings().resolved_secret_key().encode()
    digest = hmac.new(key, f"{purpose}:{tenant}:{delivery_id}:{index}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:9]).decode()


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if number == 0:
            return text


def token_for(tenant: str, delivery_id: int, index: int) -> str:
    """The signed token of link ``index`` of a delivery."""
    return f"{_base36(delivery_id)}-{index}-{_signature(tenant, delivery_id, index)}"


def read_token(tenant: str, token: str) -> tuple[int, int] | None:
    """(delivery id, link index) of a valid token of this tenant, else None."""
    parts = token.split("-", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    try:
        delivery_id, index = int(parts[0], 36), int(parts[1])
    except ValueError:
        return None
    expected = _signature(tenant, delivery_id, index)
    return (delivery_id, index) if hmac.compare_digest(expected, parts[2]) else None


def open_url(base_url: str, tenant: str, delivery_id: int) -> str:
    """The signed address an app calls when the customer opens this delivery's message."""
    token = f"{_base36(delivery_id)}-{_signature(tenant, delivery_id, 0, 'open')}"
    return f"{base_url.rstrip('/')}/o/{tenant}/{token}"


def read_open_token(tenant: str, token: str) -> int | None:
    """The delivery id of a valid open-tracking token of this tenant, else None."""
    number, _, signature = token.partition("-")
    try:
        delivery_id = int(number, 36)
    except ValueError:
        return None
    expected = _signature(tenant, delivery_id, 0, "open")
    return delivery_id if hmac.compare_digest(expected, signature) else None


def track_links(
    fields: Mapping[str, str], tenant: str, delivery_id: int, base_url: str
) -> tuple[dict[str, str], list[str]]:
    """The fields with each link replaced by a tracked one, and the targets by index.

    The same URL used twice keeps one index, so the report counts it once.
    """
    targets: list[str] = []

    def replace(match: re.Match[str]) -> str:
        url = match.group(0)
        if url not in targets:
            targets.append(url)
        index = targets.index(url)
        return f"{base_url.rstrip('/')}/l/{tenant}/{token_for(tenant, delivery_id, index)}"

    return {name: URL.sub(replace, text) for name, text in fields.items()}, targets
