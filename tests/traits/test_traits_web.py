"""Customer value in the product: the models API, the CLI refit, the page, the 360 card, the daily job."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select
from typer.testing import CliRunner

from core.cli import app as cli
from core.db.engines import tenant_engine
from core.ingest.service import accept
from core.plugins import get_host
from core.profiles.jobs import process_events
from core.queue.models import Job
from core.queue.sweeper import schedule_once, schedule_periodic
from core.traits.jobs import COMPUTE_TRAITS, refit
from tests.support import bearer, csrf_of, login

TENANT = "shop"


def history(customers: int = 80, seed: int = 7) -> list[dict]:
    """A year of orders: each customer buys 1-6 times, a few dollars to a few hundred."""
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    events = []
    for c in range(customers):
        first = start + timedelta(days=rng.randrange(0, 120))
        for n in range(rng.randint(1, 6)):
            at = first + timedelta(days=n * rng.randint(10, 50))
            events.append({"type": "track", "userId": f"c{c}", "event": "Order Completed",
                           "timestamp": at.isoformat(), "messageId": f"c{c}-{n}",
                           "properties": {"order_id": f"c{c}-{n}", "total": round(rng.uniform(5, 300), 2)}})  # fmt: skip
    return events


@pytest.fixture
def shop(installation):
    created = installation.tenant(TENANT)
    with Session(tenant_engine(created.tenant.database)) as session:
        assert not accept(session, TENANT, history()).rejected
    process_events(TENANT, {})
    return created


def test_the_api_says_never_fitted_then_returns_the_fitted_parameters(installation, shop) -> None:
    with installation.client() as client:
        before = client.get("/api/v1/traits/models", headers=bearer(shop.api_token)).json()
        assert before["status"] == "never_fitted" and before["bgnbd"] is None
        refit(TENANT, datetime(2025, 12, 31, 23, 59, tzinfo=UTC))
        models = client.get("/api/v1/traits/models", headers=bearer(shop.api_token)).json()
        assert client.get("/api/v1/traits/models").status_code == 401
    assert models["status"] == "fitted", models["message"]
    assert set(models["bgnbd"]) == {"r", "alpha", "a", "b", "time_unit", "as_of"}
    assert set(models["gamma_gamma"]) == {"p", "q", "gamma"}
    assert models["bgnbd"]["as_of"].startswith("2025-12-31") and models["bgnbd"]["time_unit"] == "days"
    assert all(value > 0 for key, value in models["bgnbd"].items() if key in "r alpha a b")


def test_the_cli_refits_as_of_a_date_and_refuses_bad_input(shop) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["traits", "fit", "--tenant", TENANT, "--as-of", "2025-09-30", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["status"] == "fitted" and shown["bgnbd"]["as_of"].startswith("2025-09-30T23:59:59")
    assert shown["buyers"] == 80
    assert runner.invoke(cli, ["traits", "fit", "--tenant", TENANT, "--as-of", "someday"]).exit_code == 2
    assert runner.invoke(cli, ["traits", "fit", "--tenant", "nope"]).exit_code == 2


def test_the_page_shows_the_fit_and_queues_a_refit_and_the_profile_shows_its_value(
    installation, shop
) -> None:
    refit(TENANT)
    client: TestClient = installation.client()
    login(client, f"admin@{TENANT}.test")
    page = client.get(f"/t/{TENANT}/traits")
    assert page.status_code == 200
    assert "fitted" in page.text and "r = " in page.text and "Most valuable buyers" in page.text
    answer = client.post(
        f"/t/{TENANT}/traits/refit", data={"csrf_token": csrf_of(client, f"/t/{TENANT}/traits")}
    )
    assert answer.status_code == 200 and "Refit queued" in answer.text
    with Session(tenant_engine(shop.tenant.database)) as session:
        assert [job.kind for job in session.exec(select(Job).where(Job.kind == COMPUTE_TRAITS))] == [
            COMPUTE_TRAITS
        ]
    profile_id = client.get("/api/v1/profiles?identifier=user_id:c1", headers=bearer(shop.api_token)).json()[
        "id"
    ]
    detail = client.get(f"/t/{TENANT}/profiles/{profile_id}")
    assert "Customer value" in detail.text and "Predicted 365-day value" in detail.text
    api = client.get(f"/api/v1/profiles/{profile_id}", headers=bearer(shop.api_token)).json()
    assert api["computed_traits"]["orders"] >= 1 and api["computed_traits"]["predicted_clv"] is not None


def test_the_sweeper_queues_the_daily_refit_once_a_day(installation, shop) -> None:
    database = shop.tenant.database
    periodic = {  # the core's: a plugin's periodic jobs run only for tenants that enabled it
        key
        for key, registered in get_host().jobs.items()
        if registered.item.every and registered.plugin == "core"
    }
    assert COMPUTE_TRAITS in periodic
    assert schedule_once() == len(periodic)  # each periodic job of the core, once, for the one tenant
    assert schedule_periodic(TENANT, database, {COMPUTE_TRAITS: timedelta(days=1)}) == 0  # already today's
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert schedule_periodic(TENANT, database, {COMPUTE_TRAITS: timedelta(days=1)}, now=tomorrow) == 1
    with Session(tenant_engine(database)) as session:
        keys = sorted(
            job.idempotency_key for job in session.exec(select(Job).where(Job.kind == COMPUTE_TRAITS))
        )
    assert len(keys) == 2 and all(key.startswith(f"every:{COMPUTE_TRAITS}:") for key in keys)
