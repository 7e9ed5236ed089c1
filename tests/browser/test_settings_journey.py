"""An admin's first steps in the UI, in a real browser: sign in, switch tenant, turn on a channel
in sandbox mode, configure it (fixing a mistake), and find all of it in the audit log. A marketer
sees the same plugins but cannot change them."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Page, expect
from tessera_push_fcm.testkeys import test_service_account

from core.db.engines import control_session
from core.tenancy.members import put_member
from core.tenancy.tenants import get_tenant
from tests.support import PASSWORD

pytestmark = pytest.mark.browser
SERVICE_ACCOUNT = json.dumps({**test_service_account(), "client_email": "push@shop.iam.gserviceaccount.com"})


def sign_in(page: Page, base: str, email: str) -> None:
    page.goto(base + "/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_admin_enables_and_configures_a_channel(server, page: Page) -> None:
    base, installation = server
    installation.tenant("acme", email="ada@acme.test")
    installation.tenant("globex", email="ada@acme.test")

    page.goto(base + "/login")
    page.fill("input[name=email]", "ada@acme.test")
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("Wrong email or password")

    sign_in(page, base, "ada@acme.test")
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme")
    page.select_option("select[name=tenant]", "globex")
    expect(page.get_by_role("heading", level=1)).to_have_text("Globex")
    page.select_option("select[name=tenant]", "acme")
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme")

    page.get_by_role("link", name="Settings").click()
    page.get_by_role("link", name="Plugins").click()
    card = page.locator("#plugin-push_fcm")
    card.get_by_role("button", name="Enable (sandbox mode)").click()
    expect(card.locator(".badge")).to_have_text("enabled · sandbox")

    config = page.locator("#config-push_fcm")
    config.locator("summary").click()
    config.locator("input[name=project_id]").fill("shop-app")
    config.locator("input[name=service_account_json]").fill("not json")
    config.get_by_role("button", name="Save configuration").click()
    expect(config.get_by_role("alert")).to_contain_text("Not saved")
    expect(config.locator(".field-error")).to_contain_text("not valid JSON")
    expect(config.locator("input[name=project_id]")).to_have_value("shop-app")

    config.locator("input[name=service_account_json]").fill(SERVICE_ACCOUNT)
    config.get_by_role("button", name="Save configuration").click()
    expect(config.get_by_role("status")).to_have_text("Configuration saved.")
    secret = config.locator("input[name=service_account_json]")
    expect(secret).to_have_value("")
    expect(secret).to_have_attribute("placeholder", "stored — leave blank to keep")
    assert "push@shop" not in page.content()

    # Nothing of acme's configuration shows in globex.
    page.goto(base + "/t/globex/settings/plugins")
    expect(page.locator("#plugin-push_fcm .badge")).to_have_text("disabled")

    page.goto(base + "/t/acme/settings/audit")
    actions = page.locator("table tbody td:nth-child(3)")
    expect(actions).to_contain_text(["plugin.config", "plugin.enable", "login", "login.failed"])

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto(base + "/t/acme/settings")
    expect(page).to_have_url(re.compile(r"/login\?next="))


def test_marketer_reads_plugins_but_cannot_change_them(server, page: Page) -> None:
    base, installation = server
    installation.tenant("acme", email="ada@acme.test")
    with control_session() as session:
        tenant = get_tenant(session, "acme")
        put_member(session, tenant, email="mia@acme.test", role="marketer", password=PASSWORD, actor="test")
        session.commit()

    sign_in(page, base, "mia@acme.test")
    page.goto(base + "/t/acme/settings/plugins")
    expect(page.locator("#plugin-push_fcm")).to_be_visible()
    expect(page.get_by_role("button", name="Enable (sandbox mode)")).to_have_count(0)
    expect(page.get_by_role("link", name="Members")).to_have_count(0)
    expect(page.get_by_role("link", name="Audit log")).to_have_count(0)
    response = page.goto(base + "/t/acme/settings/members")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
