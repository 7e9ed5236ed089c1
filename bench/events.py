"""Synthetic Segment-shaped events: a mixed stream for ingestion, and customer journeys for processing.

Only the standard library, so the load generator can import it cheaply. Everything is
deterministic for a given seed; ``tag`` (a few characters, different per run) keeps message ids,
user ids, anonymous ids and emails of one run apart from those of any other.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

PRODUCTS = [
    ("sku-1001", "Linen Shirt", "Apparel", 49.0),
    ("sku-1002", "Canvas Sneakers", "Shoes", 79.5),
    ("sku-1003", "Leather Wallet", "Accessories", 39.9),
    ("sku-1004", "Rain Jacket", "Apparel", 129.0),
    ("sku-1005", "Wool Scarf", "Accessories", 25.0),
    ("sku-1006", "Trail Boots", "Shoes", 149.0),
    ("sku-1007", "Denim Jeans", "Apparel", 89.0),
    ("sku-1008", "Sun Glasses", "Accessories", 59.0),
]
PAGES = [
    ("Home", "/"),
    ("Category", "/c/apparel"),
    ("Category", "/c/shoes"),
    ("Search", "/search?q=boots"),
    ("Product", "/p/linen-shirt"),
    ("Cart", "/cart"),
    ("Help", "/help/shipping"),
]
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 Version/17.2 Safari/605.1.15",
]
TRACK_NAMES = ["Product Viewed", "Product Viewed", "Product Added", "Checkout Started", "Order Completed"]
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
SPREAD = timedelta(days=180)  # first visits spread over six months
STEP_GAP_S = 6 * 3600.0  # mean time between one person's events
ARRIVAL_JITTER_S = 600.0  # events arrive in time order give or take ten minutes


def anonymous_id(tag: str, person: int, device: int = 0) -> str:
    """A person's anonymous id on one device, shaped like analytics.js's (a UUID)."""
    digest = hashlib.blake2b(f"{tag}:{person}:{device}".encode(), digest_size=16).digest()
    return str(uuid.UUID(bytes=digest, version=4))


def user_id(tag: str, person: int) -> str:
    """A person's user id (the shop's customer number)."""
    return f"user-{tag}-{person:07d}"


def email(tag: str, person: int) -> str:
    """A person's email address."""
    return f"customer{person}.{tag}@example.com"


def iso(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a ``Z``, as analytics.js sends."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _context(rng: random.Random, path: str) -> dict[str, Any]:
    return {
        "library": {"name": "analytics.js", "version": "5.2.1"},
        "ip": f"203.0.113.{rng.randrange(1, 255)}",
        "locale": "en-US",
        "userAgent": rng.choice(USER_AGENTS),
        "page": {
            "path": path,
            "url": f"https://shop.example.com{path}",
            "referrer": "https://www.google.com/",
        },
    }


def _track(rng: random.Random, name: str | None = None) -> dict[str, Any]:
    sku, title, category, price = rng.choice(PRODUCTS)
    properties: dict[str, Any] = {
        "product_id": sku,
        "sku": sku,
        "name": title,
        "category": category,
        "price": price,
        "currency": "EUR",
        "quantity": 1,
    }
    name = name or rng.choice(TRACK_NAMES)
    if name == "Order Completed":
        properties = {
            "order_id": f"o-{rng.getrandbits(40):x}",
            "total": price,
            "currency": "EUR",
            "products": [properties],
        }
    return {"type": "track", "event": name, "properties": properties}


def _page(rng: random.Random) -> dict[str, Any]:
    name, path = rng.choice(PAGES)
    return {
        "type": "page",
        "name": name,
        "properties": {"path": path, "url": f"https://shop.example.com{path}", "title": f"{name} | Shop"},
    }


def _identify(tag: str, person: int) -> dict[str, Any]:
    return {
        "type": "identify",
        "traits": {"email": email(tag, person), "name": f"Customer {person}", "plan": "member"},
    }


def mixed_event(
    rng: random.Random, tag: str, message_id: str, people: int = 50_000, track_only: bool = False
) -> dict[str, Any]:
    """One event of a shop's stream: 60 % track, 30 % page, 10 % identify; half the people logged in.

    With ``track_only`` every event is a track (for ``POST /v1/track``).
    """
    person = rng.randrange(people)
    roll = 1.0 if track_only else rng.random()
    if roll < 0.1:
        event = _identify(tag, person)
    elif roll < 0.4:
        event = _page(rng)
    else:
        event = _track(rng)
    event["anonymousId"] = anonymous_id(tag, person)
    if event["type"] == "identify" or person % 2 == 0:
        event["userId"] = user_id(tag, person)
    event["messageId"] = message_id
    event["timestamp"] = iso(EPOCH + timedelta(seconds=rng.uniform(0, SPREAD.total_seconds())))
    event["context"] = _context(rng, event.get("properties", {}).get("path", "/"))
    return event


# --- journeys -----------------------------------------------------------------------------------
ANON, IDENTIFY, TRACK = 0, 1, 2


@dataclass(frozen=True)
class Population:
    """Who the journeys belong to: how many people, events and two-device people there are."""

    events: int
    people: int
    two_device_people: int


def _plan(count: int, two_devices: bool) -> list[tuple[int, int]]:
    """One person's steps as (kind, device): anonymous browsing, logging in, then tracked as the user.

    On two devices the person browses on both, then logs in on each (an identify carrying that
    device's anonymous id), so both devices join the one profile.
    """
    if two_devices and count >= 4:
        browsing = max(2, (count - 2) // 2)
        steps = [(ANON, i % 2) for i in range(browsing)] + [(IDENTIFY, 0), (IDENTIFY, 1)]
    elif count >= 2:
        browsing = max(1, (count - 1) // 2)
        steps = [(ANON, 0)] * browsing + [(IDENTIFY, 0)]
    else:
        steps = [(IDENTIFY, 0)]
    return steps + [(TRACK, i % 2 if two_devices and count >= 4 else 0) for i in range(count - len(steps))]


def _schedule(
    events: int, people: int, two_device_share: float, seed: int
) -> tuple[list[tuple[float, float, int, int, int, int]], int]:
    """Every event as (arrival key, timestamp, person, step, kind, device), in arrival order."""
    rng = random.Random(seed)
    base, extra = divmod(events, people)
    spread = SPREAD.total_seconds()
    schedule = []
    two_device_people = 0
    for person in range(people):
        steps = _plan(base + (1 if person < extra else 0), rng.random() < two_device_share)
        if len({device for _, device in steps}) == 2:
            two_device_people += 1
        moment = rng.uniform(0, spread)
        for step, (kind, device) in enumerate(steps):
            schedule.append((moment + rng.uniform(0, ARRIVAL_JITTER_S), moment, person, step, kind, device))
            moment += rng.expovariate(1 / STEP_GAP_S)
    schedule.sort()
    return schedule, two_device_people


def journeys(
    events: int, people: int, two_device_share: float = 0.2, seed: int = 1, tag: str = "b"
) -> tuple[Population, Iterator[dict[str, Any]]]:
    """``events`` events of ``people`` people, in arrival order (roughly by time, people interleaved).

    Each person browses anonymously, logs in (identify with user id, the device's anonymous id and
    an email trait) and is then tracked with user id and anonymous id; a ``two_device_share`` of
    them browse on two devices and log in on both. About ``events / people`` events each.
    """
    if people < 1 or events < people:
        raise ValueError("need at least one person and one event per person")
    schedule, two_device_people = _schedule(events, people, two_device_share, seed)

    def generate() -> Iterator[dict[str, Any]]:
        rng = random.Random(seed + 1)
        for _, moment, person, step, kind, device in schedule:
            if kind == IDENTIFY:
                event = _identify(tag, person)
            elif kind == ANON and rng.random() < 0.5:
                event = _page(rng)
            else:
                event = _track(rng, "Product Viewed" if kind == ANON else None)
            event["anonymousId"] = anonymous_id(tag, person, device)
            if kind != ANON:
                event["userId"] = user_id(tag, person)
            event["messageId"] = f"{tag}-{person}-{step}"
            event["timestamp"] = iso(EPOCH + timedelta(seconds=moment))
            event["context"] = _context(rng, event.get("properties", {}).get("path", "/"))
            yield event

    return Population(events, people, two_device_people), generate()
