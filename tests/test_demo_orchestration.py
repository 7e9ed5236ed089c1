"""The demo tenant gets a sample campaign and journey (drafts on the push channel), once."""

from __future__ import annotations

from sqlmodel import Session, select

from core.campaigns.models import Campaign
from core.db.engines import control_session, tenant_engine
from core.demo import seed_demo_data
from core.journeys.models import Journey
from core.plugins import get_host
from core.profiles.models import Identity
from core.tenancy.plugin_settings import channel_config, set_enabled
from core.tenancy.tenants import get_tenant


def test_the_demo_drafts_a_campaign_and_a_journey_once(sqlite_installation) -> None:
    database = sqlite_installation.tenant("demo").tenant.database
    with control_session() as control:
        set_enabled(control, get_tenant(control, "demo"), get_host(), "push_fcm", True)
        control.commit()
    seed_demo_data("demo")
    seed_demo_data("demo")
    with Session(tenant_engine(database)) as session:
        campaigns = session.exec(select(Campaign)).all()
        journeys = session.exec(select(Journey)).all()
    assert [(c.name, c.status, c.channel) for c in campaigns] == [
        ("Winter sale for our best customers", "draft", "push_fcm")
    ]
    assert [(j.name, j.status) for j in journeys] == [("Thank you after a first order", "draft")]


def test_the_demo_customers_app_installs_can_be_reached_by_push(sqlite_installation) -> None:
    database = sqlite_installation.tenant("demo").tenant.database
    with control_session() as control:
        set_enabled(control, get_tenant(control, "demo"), get_host(), "push_fcm", True, sandbox=True)
        control.commit()
    seed_demo_data("demo")
    with control_session() as control:
        configured = channel_config(control, get_tenant(control, "demo"), get_host(), "push_fcm")
    assert configured is not None  # the sandbox's test project and service account
    with Session(tenant_engine(database)) as session:
        tokens = session.exec(select(Identity).where(Identity.type == "fcm_token")).all()
    assert len(tokens) > 20 and len({t.profile_id for t in tokens}) == len(tokens)
