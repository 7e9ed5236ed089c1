"""Signed public links to one profile's pass of one template: landing page, download, QR code.

A link names the template and the profile, signed per tenant, so it can be put in any message
(``{{ wallet.<template key> }}``) before the pass exists: the first visit issues it. Nobody can
forge a link to someone else's pass, and a link keeps working after the pass is re-issued.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from core.settings import get_settings


@dataclass(frozen=True)
class PassLink:
    """What a valid link points at."""

    template_id: int
    profile_id: str


def _signature(tenant: str, template_id: int, profile_id: str) -> str:
    key = get_settings().resolved_secret_key().encode()
    digest = hmac.new(key, f"pass:{tenant}:{template_id}:{profile_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:12]).decode().rstrip("=")


def link_token(tenant: str, template_id: int, profile_id: str) -> str:
    """The signed token of one profile's pass of one template."""
    named = base64.urlsafe_b64encode(f"{template_id}:{profile_id}".encode()).decode().rstrip("=")
    return f"{named}.{_signature(tenant, template_id, profile_id)}"


def read_link(tenant: str, token: str) -> PassLink | None:
    """What a token of this tenant points at, or None for a forged, altered or foreign one."""
    named, _, signature = token.partition(".")
    try:
        text = base64.urlsafe_b64decode(named + "=" * (-len(named) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    template, _, profile_id = text.partition(":")
    if not template.isdigit() or not profile_id or len(profile_id) > 40:
        return None
    if not hmac.compare_digest(_signature(tenant, int(template), profile_id), signature):
        return None
    return PassLink(int(template), profile_id)


def _image_signature(tenant: str, image_id: int) -> str:
    key = get_settings().resolved_secret_key().encode()
    digest = hmac.new(key, f"pass-image:{tenant}:{image_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:9]).decode()


def image_url(tenant: str, image_id: int) -> str:
    """The public address of a pass image (@2x PNG), for wallets that fetch images themselves."""
    base = get_settings().public_url.rstrip("/")
    return f"{base}/w/{tenant}/image/{image_id}-{_image_signature(tenant, image_id)}.png"


def read_image_name(tenant: str, name: str) -> int | None:
    """The image id a public image name (``<id>-<signature>``) of this tenant points at, or None."""
    image_id, _, signature = name.partition("-")
    if not image_id.isdigit() or not hmac.compare_digest(_image_signature(tenant, int(image_id)), signature):
        return None
    return int(image_id)


def landing_url(tenant: str, template_id: int, profile_id: str) -> str:
    """The public page offering the pass to its owner (the right button for their phone)."""
    base = get_settings().public_url.rstrip("/")
    return f"{base}/w/{tenant}/{link_token(tenant, template_id, profile_id)}"


def download_url(tenant: str, template_id: int, profile_id: str, channel: str | None = None) -> str:
    """The public link that downloads the signed pass itself (or opens a hosted wallet's save page),
    in wallet ``channel`` (None: the one the visitor's phone has)."""
    wallet = f"?wallet={channel}" if channel else ""
    return landing_url(tenant, template_id, profile_id) + "/pass" + wallet


def qr_url(tenant: str, template_id: int, profile_id: str) -> str:
    """A QR code image (SVG) of the landing page, for print and in-store signage."""
    return landing_url(tenant, template_id, profile_id) + "/qr.svg"
