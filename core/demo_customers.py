"""Sample customers for the demo tenant: visitors, logins, purchases, consents, from several sources.

Generated from a fixed seed, sent through the same ingestion path as real events (so they are
processed like them), with deterministic message ids so seeding twice stores nothing new.
"""

from __future__ import annotations

import hashlib
import random
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

from core.db.engines import tenant_session
from core.ingest.service import accept
from core.profiles.jobs import process_events
from core.tenancy.models import Tenant
from core.traits.jobs import refit

FIRST = ["Ann", "Bruno", "Chloé", "Dev", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kaito", "Lea",
         "Mateo", "Nora", "Omar", "Paula", "Quentin", "Rosa", "Sami", "Tess"]  # fmt: skip
LAST = ["Martin", "Rossi", "Nguyen", "Schmidt", "Dubois", "Garcia", "Okafor", "Larsen", "Kowalski", "Silva"]
CITIES = [
    ("Paris", "FR"),
    ("Lyon", "FR"),
    ("Berlin", "DE"),
    ("Milan", "IT"),
    ("Madrid", "ES"),
    ("London", "GB"),
]
PRODUCTS = [("sku-101", "Espresso beans", 14.5), ("sku-102", "Travel mug", 19.0), ("sku-103", "Grinder", 89.0),
            ("sku-104", "Oat milk", 3.2), ("sku-105", "Gift card", 50.0)]  # fmt: skip
CUSTOMERS = 120


def _ascii(name: str) -> str:
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()


def demo_push_token(index: int) -> str:
    """A made-up FCM registration token for customer ``index`` (shaped like a real one)."""
    digest = hashlib.sha256(f"demo-device-{index}".encode()).hexdigest()
    return f"d{digest[:21]}:APA91b{digest[21:]}"


def customer_events(index: int, now: datetime, rng: random.Random) -> list[dict[str, Any]]:
    """One customer's story: anonymous browsing, sign-up, purchases, a support call, app opens."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    city, country = rng.choice(CITIES)
    user_id, anon = f"cust-{1000 + index}", f"anon-{index:04d}"
    email = f"{_ascii(first)}.{_ascii(last)}{index}@example.com"
    start = now - timedelta(days=rng.randint(20, 400))
    events: list[dict[str, Any]] = []

    def add(kind: str, at: datetime, **fields: Any) -> None:
        events.append(
            {"type": kind, "timestamp": at.isoformat(), "messageId": f"demo-{index}-{len(events)}", **fields}
        )

    add("page", start, anonymousId=anon, name="Home", properties={"url": "https://shop.example.com/"})
    add("track", start + timedelta(minutes=3), anonymousId=anon, event="Product Viewed",
        properties={"product_id": rng.choice(PRODUCTS)[0]})  # fmt: skip
    signup = start + timedelta(minutes=9)
    traits: dict[str, Any] = {
        "email": email, "first_name": first, "last_name": last, "name": f"{first} {last}", "city": city,
        "country": country, "birthday": f"19{rng.randint(60, 99)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
    }  # fmt: skip
    consent = {"email": rng.random() < 0.8, "push_fcm": rng.random() < 0.6, "whatsapp": rng.random() < 0.4}
    traits |= {"consent": consent, "phone": f"+3361{index:07d}"}
    if consent["whatsapp"]:
        traits["whatsapp_id"] = f"3361{index:07d}"  # their phone number, as WhatsApp writes it
    add("identify", signup, anonymousId=anon, userId=user_id, traits=traits)
    when = signup
    for order in range(rng.randint(0, 6)):
        when += timedelta(days=rng.randint(3, 60))
        if when > now:
            break
        items = rng.sample(PRODUCTS, rng.randint(1, 3))
        total = round(sum(price for _, _, price in items), 2)
        add("track", when, userId=user_id, event="Order Completed", properties={
            "order_id": f"ord-{index}-{order}", "total": total, "revenue": total, "currency": "EUR",
            "products": [{"product_id": sku, "name": name, "price": price, "quantity": 1} for sku, name, price in items],
        })  # fmt: skip
    when = min(when, now - timedelta(days=3))
    if rng.random() < 0.3:
        add("track", when + timedelta(days=1), userId=user_id, event="Support Call",
            properties={"topic": rng.choice(["delivery", "refund", "product"]), "minutes": rng.randint(2, 25)},
            context={"source": "call-center"})  # fmt: skip
    if rng.random() < 0.5:
        # The app registers for push: Segment's context.device.token carries the FCM token.
        device = {"type": "ios", "token": demo_push_token(index)}
        add("screen", when + timedelta(days=2), userId=user_id, name="Loyalty card",
            context={"app": {"name": "Shop app"}, "device": device})  # fmt: skip
    return events


def seed_demo_customers(tenant: Tenant) -> None:
    """About a hundred customers with their timelines, processed into profiles, their value computed."""
    rng = random.Random(20261124)
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    events = [e for i in range(CUSTOMERS) for e in customer_events(i, now, rng)]
    with tenant_session(tenant.database) as session:
        for start in range(0, len(events), 500):
            accept(session, tenant.slug, events[start : start + 500])
    process_events(tenant.slug, {})
    refit(tenant.slug, now)
