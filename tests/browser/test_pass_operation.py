"""A marketer runs a digital pass operation on the demo tenant in a real browser: the seven steps, from
the operation's dates to the launch, ending with passes issued to the sandboxed Apple and Google
wallets and the report showing them.

The demo tenant (sandboxed Apple and Google Wallet, the Tessera Club card in both, 120 customers,
the "French customers" segment) is seeded in the test's process; `tessera serve` runs the pages and
its in-process worker runs the launch job.
"""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session, col, select

from core.db.engines import control_session, tenant_engine
from core.demo import DEMO_PASSWORD, seed_demo_data
from core.operations.models import PassOperation
from core.passes.models import WalletPass
from core.plugins import get_host
from core.tenancy.plugin_settings import set_enabled
from core.tenancy.tenants import get_tenant

pytestmark = pytest.mark.browser


def test_a_marketer_runs_a_pass_operation_in_seven_steps(server, page: Page) -> None:
    base, installation = server
    database = installation.tenant("demo").tenant.database
    with control_session() as control:
        tenant = get_tenant(control, "demo")
        for wallet in ("wallet_apple", "wallet_google"):
            set_enabled(control, tenant, get_host(), wallet, True, sandbox=True)
        control.commit()
    seed_demo_data("demo")

    page.goto(base + "/login")
    page.fill("input[name=email]", "marketer@tessera.local")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.goto(base + "/t/demo/wallet")
    page.get_by_role("link", name="Operations").click()
    page.get_by_role("link", name="New operation").click()

    # 1. The operation: the end before the start is refused in words.
    page.get_by_label("Name").fill("Winter club card")
    page.get_by_label("Goal").fill("Get French members to carry the club card")
    page.get_by_label("Starts on").fill("2026-12-20")
    page.get_by_label("Ends on").fill("2026-12-01")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("[data-for=ends_on]")).to_have_text("The operation must end after it starts.")
    page.get_by_label("Ends on").fill("2027-01-31")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#step-body")).to_have_attribute("data-step", "2")

    # 2. The templates, one per wallet.
    page.get_by_label("Apple Wallet template").select_option(label="Tessera Club card")
    page.get_by_label("Google Wallet template").select_option(
        label="Tessera Club card"
    )  # the same card, both wallets
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#step-body")).to_have_attribute("data-step", "3")

    # 3. The member field shows the first name, "Member" without one.
    page.get_by_label("Profile value of Member").select_option("traits.first_name")
    page.get_by_label("Fallback of Member").fill("Member")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#step-body")).to_have_attribute("data-step", "4")

    # 4. The audience: its size and reach per wallet appear as the segment is chosen.
    page.get_by_label("Segment").select_option(label="French customers")
    expect(page.locator("#reach [data-figure=size]")).to_have_text(re.compile(r"^[1-9]"))
    expect(page.locator("#reach [data-wallet=wallet_google]")).to_be_visible()
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#step-body")).to_have_attribute("data-step", "5")

    # 5. Distribution: QR codes and the web button (a per-profile link, explained).
    page.get_by_label("QR code for print and in-store").check()
    page.get_by_label("Embeddable web button and link").check()
    expect(page.locator(".example").first).to_contain_text("Add to wallet")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#step-body")).to_have_attribute("data-step", "6")

    # 6. Apple and Google side by side, and the validation report.
    expect(page.locator("#side-by-side [data-wallet=wallet_apple]")).to_be_visible()
    expect(page.locator("#side-by-side [data-wallet=wallet_google]")).to_be_visible()
    expect(page.locator("#validation")).to_contain_text("members checked")
    page.get_by_role("link", name="Next").click()

    # 7. Launch, confirmed; the report follows the background job.
    page.get_by_role("button", name="Launch").click()
    expect(page.locator("[data-for=confirm]")).to_contain_text("Tick the box to confirm")
    page.get_by_label("I confirm").check()
    page.get_by_role("button", name="Launch").click()
    expect(page).to_have_url(re.compile(r"/wallet/operations/\d+/report$"))
    expect(page.locator("#operation-report")).to_have_attribute("data-state", "launched", timeout=60_000)

    with Session(tenant_engine(database)) as session:
        [operation] = session.exec(select(PassOperation)).all()
        ids = operation.template_ids()
        serials = {
            wallet: set(
                session.exec(
                    select(WalletPass.serial).where(
                        col(WalletPass.template_id) == tid, WalletPass.channel == wallet
                    )
                ).all()
            )
            for wallet, tid in ids.items()
        }
        by_wallet = {wallet: len(found) for wallet, found in serials.items()}
    issued = operation.counts
    assert issued["targeted"] > 0
    for wallet in ("wallet_apple", "wallet_google"):
        assert issued[wallet]["issued"] > 0 and by_wallet[wallet] >= issued[wallet]["issued"]
        expect(page.locator(f"[data-figure=issued-{wallet}]")).to_have_text(f"{issued[wallet]['issued']:,}")
    expect(page.locator("[data-figure=targeted]")).to_have_text(f"{issued['targeted']:,}")
    expect(page.locator("#operation-report")).to_contain_text("keep updating after the operation ends")
    # Google's passes reached the fake Google Wallet API (the server's sandbox), each a valid object.
    google = httpx.get(f"{base}/sandbox/demo/wallet_google/_sandbox/state", timeout=10).json()
    assert serials["wallet_google"] <= set(google["objects"])
    assert all(google["objects"][serial]["state"] == "ACTIVE" for serial in serials["wallet_google"])
