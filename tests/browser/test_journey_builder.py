"""A marketer builds a journey in a real browser: an event trigger, a message, a wait and the exit,
each added with the "+" on a connector and filled in the side panel; then activates it and sees the
flow with its counts. Customers sign up through the public ingestion API of the running `tessera
serve`, whose in-process worker enters them into the journey.

With ``TESSERA_SCREENSHOTS=1`` the flow is saved as docs/screenshots/journey-builder.png.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from core.db.engines import control_session
from core.plugins import get_host
from core.tenancy.members import put_member
from core.tenancy.plugin_settings import set_enabled
from core.tenancy.tenants import get_tenant
from tests.plugins_host.packages import plugin_packages, recording_plugin
from tests.support import PASSWORD, bearer

__all__ = ["plugin_packages", "recording_plugin"]
pytestmark = pytest.mark.browser
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "journey-builder.png"
SCREENSHOTS = os.environ.get("TESSERA_SCREENSHOTS") == "1"  # read now: the installation clears TESSERA_*


def sign_in(page: Page, base: str, email: str) -> None:
    """Sign in through the login form."""
    page.goto(base + "/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def swapped(page: Page, action: Callable[[], Any]) -> None:
    """Do something that re-renders the builder, and wait until the new one is in place."""
    before = page.locator("#workspace").element_handle()
    action()
    before.wait_for_element_state("hidden")  # detached: swapped for the re-rendered workspace


def add_step(page: Page, connector: str, kind: str) -> None:
    """Open the "+" menu of a connector and choose a step type."""
    menu = page.locator(f"#{connector}")
    menu.locator("summary").click()
    swapped(page, menu.get_by_role("menuitem", name=kind, exact=True).click)


def sign_up(base: str, write_key: str, api_token: str, *users: str) -> None:
    """Customers identify themselves and sign up, through the public API; wait until processed."""
    batch: list[dict[str, object]] = []
    for user in users:
        batch.append({"type": "identify", "userId": user, "traits": {"email": f"{user}@example.com",
                      "first_name": user.title(), "consent": {"recording_channel": True}}})  # fmt: skip
        batch.append({"type": "track", "userId": user, "event": "Signed Up"})
    answer = httpx.post(f"{base}/v1/batch", json={"batch": batch}, auth=(write_key, ""), timeout=10)
    assert answer.status_code == 200, answer.text
    for _ in range(150):
        found = httpx.get(f"{base}/api/v1/profiles?identifier=user_id:{users[-1]}", headers=bearer(api_token),
                          timeout=5)  # fmt: skip
        if found.status_code == 200:
            return
        time.sleep(0.1)
    pytest.fail("the customers were not processed")


def test_a_marketer_builds_and_activates_a_journey(recording_plugin, server, page: Page) -> None:
    base, installation = server
    created = installation.tenant("shop", email="ada@shop.test")
    with control_session() as session:
        tenant = get_tenant(session, "shop")
        set_enabled(session, tenant, get_host(), "recording_channel", True)
        put_member(session, tenant, email="mia@shop.test", role="marketer", password=PASSWORD, actor="test")
        session.commit()

    sign_in(page, base, "mia@shop.test")
    page.get_by_role("link", name="Journeys").click()
    page.get_by_role("link", name="New journey").click()
    page.get_by_label("Name").fill("Welcome series")
    page.get_by_role("button", name="Create and open the builder").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Welcome series")

    # The trigger: a tracked event.
    panel = page.locator("#panel")
    swapped(page, lambda: panel.locator("select[name=trigger_type]").select_option("event"))
    panel.get_by_label("Event", exact=True).fill("Signed Up")
    swapped(page, panel.get_by_role("button", name="Save trigger").click)
    expect(page.locator("#box-trigger")).to_contain_text("When “Signed Up” is tracked")
    expect(page.locator("#save-state")).to_contain_text("Saved")

    # A message, on the connector under the trigger.
    add_step(page, "add-step-exit", "Send a message")
    expect(panel.get_by_label("Channel")).to_have_value("recording_channel")
    panel.get_by_label("Label").fill("Welcome")
    panel.locator("textarea[name='text.en.title']").fill("Welcome aboard")
    panel.locator("textarea[name='text.en.body']").fill("Hi {{ traits.first_name }}, glad you joined.")
    swapped(page, panel.get_by_role("button", name="Save step").click)
    expect(page.locator("#step-s1")).to_contain_text("Send on Recording channel: “Welcome aboard”")

    # A wait, between the message and the exit.
    add_step(page, "add-step-exit", "Wait")
    panel.get_by_label("For", exact=True).fill("2")
    panel.get_by_label("Unit").select_option("hours")
    swapped(
        page, lambda: panel.get_by_label("For", exact=True).press("Enter")
    )  # Enter in a panel input saves the step
    expect(page.locator("#step-s2")).to_contain_text("Wait 2 hours")
    boxes = page.locator(".flow-box")
    expect(boxes).to_have_count(4)  # trigger, send, wait, exit: drawn in this order
    expect(boxes.nth(1)).to_have_id("step-s1")
    expect(boxes.nth(2)).to_have_id("step-s2")
    expect(boxes.nth(3)).to_have_id("step-exit")

    # Activate (confirming), then customers sign up and flow through.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Activate").click()
    expect(page.locator("#journey-status")).to_have_text("active")
    sign_up(base, created.write_key, created.api_token, "ann", "bob")
    deadline = time.monotonic() + 60  # the server's worker runs behind the whole suite's load
    while time.monotonic() < deadline:
        page.reload()
        if "2 here now" in (page.locator("#step-s2").text_content() or ""):
            break
        time.sleep(0.2)
    expect(page.locator("#step-s1")).to_contain_text("2 entered")
    expect(page.locator("#step-s2")).to_contain_text("2 here now")
    expect(page.locator("#box-trigger")).to_contain_text("2 entered")
    expect(page.locator("#panel")).to_contain_text(
        "Choose the trigger or a step on the flow to see its settings"
    )
    assert re.search(r"/t/shop/journeys/\d+$", page.url)
    if SCREENSHOTS:
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
