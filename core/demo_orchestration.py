"""A sample campaign and journey for the demo tenant, as drafts on the push channel.

They stay drafts, for the visitor to preview, confirm and launch: the demo's push channel runs in
sandbox mode, so the pushes go to the plugin's local fake FCM (listed under Settings > Sandbox),
to the app installs whose tokens the sample customers' app events carried.
"""

from __future__ import annotations

from sqlmodel import select

from core.campaigns.models import Campaign
from core.campaigns.service import CampaignIn, create_campaign
from core.db.engines import control_session, tenant_session
from core.journeys.models import Journey
from core.journeys.service import JourneyIn, create_journey
from core.segments.models import Segment
from core.segments.service import tenant_scope
from core.tenancy.models import Tenant

CHANNEL = "push_fcm"
CAMPAIGN = "Winter sale for our best customers"
JOURNEY = "Thank you after a first order"
PUSH = {
    "variants": {
        "en": {
            "title": "{{ traits.first_name }}, the winter sale is on",
            "body": "Up to 40% off, today only.",
        },
        "fr": {
            "title": "{{ traits.first_name }}, les soldes d'hiver commencent",
            "body": "Jusqu'à -40 %, aujourd'hui.",
        },
    },
    "fallback": "en",
}
THANKS = {"variants": {"en": {"title": "Thank you, {{ traits.first_name }}!", "body": "Your order is on its way."}},
          "fallback": "en"}  # fmt: skip
JOURNEY_DEFINITION = {
    "trigger": {"type": "event", "event": "Order Completed"},
    "start": "thanks",
    "steps": {
        "thanks": {"type": "send", "channel": CHANNEL, "content": THANKS, "marketing": False, "next": "wait",
                   "label": "Thank you"},
        "wait": {"type": "wait", "seconds": 7 * 86400, "next": "again", "label": "A week later"},
        "again": {"type": "wait_for_event", "event": "Order Completed", "timeout_seconds": 14 * 86400,
                  "on_event": None, "on_timeout": "nudge", "label": "Ordered again?"},
        "nudge": {"type": "send", "channel": CHANNEL, "content": PUSH, "next": None, "label": "Nudge"},
    },
    "goal": {"event": "Order Completed", "within_days": 21},
    "reentry": {"mode": "after_exit", "cooldown_hours": 0},
}  # fmt: skip


def seed_demo_orchestration(tenant: Tenant) -> None:
    """Create the sample campaign and journey if they are missing (only with the push channel on)."""
    with control_session() as control:
        scope = tenant_scope(control, tenant)
    if CHANNEL not in scope.channels:
        return
    with tenant_session(tenant.database) as session:
        best = session.exec(select(Segment.id).where(Segment.name == "Best customers")).first()
        if (
            best is not None
            and session.exec(select(Campaign.id).where(Campaign.name == CAMPAIGN)).first() is None
        ):
            data = CampaignIn(
                name=CAMPAIGN, segment_id=best, channel=CHANNEL, content=PUSH, goal_event="Order Completed"
            )
            create_campaign(session, tenant, scope, data, "demo")
        if session.exec(select(Journey.id).where(Journey.name == JOURNEY)).first() is None:
            create_journey(session, scope, JourneyIn(name=JOURNEY, definition=JOURNEY_DEFINITION), "demo")
        session.commit()
