"""The pass operation pages through the real forms (CSRF, roles, htmx): each of the seven steps renders,
refuses what is wrong in words, and moves on; the launch issues the passes and the report shows them.

The shop has Apple Wallet (the test certificate chain), Ann (first name Ann) and Bob (no first name),
and a segment of both; Mia the marketer runs the operation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from typing import Any

import pytest
from sqlmodel import select

from core.operations.models import OperationState, PassOperation
from core.passes.models import WalletPass
from tests.support import run_due_jobs
from tests.web.wallet_shop import BASE, TENANT, WalletShop, audited, open_wallet_shop

OPS = f"{BASE}/operations"
HTMX = {"HX-Request": "true"}


@pytest.fixture
def shop(installation: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[WalletShop]:
    """The shop on each backend, Mia signed in."""
    yield from open_wallet_shop(installation, monkeypatch)


def text_of(html: str) -> str:
    """The page's text, tags and entities removed, whitespace collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def post(shop: WalletShop, url: str, data: dict[str, Any], htmx: bool = False) -> Any:
    """A form post with the session's CSRF token."""
    return shop.client.post(url, data={"csrf_token": shop.csrf, **data}, headers=HTMX if htmx else {},
                            follow_redirects=False)  # fmt: skip


def test_each_step_renders_validates_and_leads_to_the_report(shop: WalletShop) -> None:
    template_id = shop.create_template()
    listed = shop.client.get(OPS)
    assert listed.status_code == 200 and "No operation yet" in listed.text and "New operation" in listed.text
    assert 'href="/t/shop/wallet/operations"' in shop.client.get(BASE).text  # in the section's tabs

    # Step 1.
    assert "Step 1 of 7: The operation" in text_of(shop.client.get(f"{OPS}/new").text)
    refused = post(
        shop, f"{OPS}/new", {"name": "", "goal": "", "starts_on": "2026-12-10", "ends_on": "2026-12-01"}
    )
    assert refused.status_code == 422
    said = text_of(refused.text)
    assert "Give the operation a name." in said and "The operation must end after it starts." in said
    made = post(shop, f"{OPS}/new", {"name": "Winter club", "goal": "Carry the card", "starts_on": "2026-12-01",
                                     "ends_on": "2026-12-31"})  # fmt: skip
    assert made.status_code == 303
    url = made.headers["location"].removesuffix("/step/2")
    assert re.fullmatch(rf"{OPS}/\d+", url) and audited("passes.operation.create")

    # Step 2 (htmx: the problems come back as a partial swap, success as HX-Redirect).
    page = shop.client.get(f"{url}/step/2")
    assert page.status_code == 200 and "Create a template" in page.text and "Club card" in page.text
    refused = post(shop, f"{url}/step/2", {"apple_template_id": "", "google_template_id": ""}, htmx=True)
    assert refused.status_code == 422 and "Choose a template for at least one wallet." in refused.text
    chosen = post(
        shop, f"{url}/step/2", {"apple_template_id": str(template_id), "google_template_id": ""}, htmx=True
    )
    assert chosen.headers["HX-Redirect"] == f"{url}/step/3"

    # Step 3: the member field shows the first name, "Member" when there is none.
    page = shop.client.get(f"{url}/step/3")
    assert page.status_code == 200 and 'name="bind.member.source"' in page.text, text_of(page.text)[:2000]
    refused = post(shop, f"{url}/step/3", {"bind.member.source": "os.system", "bind.member.format": "text"})
    assert refused.status_code == 422 and "is not a profile value to show" in unescape(refused.text)
    saved = post(shop, f"{url}/step/3", {"bind.member.source": "traits.first_name", "bind.member.format": "text",
                                         "bind.member.fallback": "Member"})  # fmt: skip
    assert saved.status_code == 303, text_of(saved.text)[:2000]
    fields = {f["key"]: f["value"] for f in shop.template(template_id).design["fields"]}
    assert fields["member"] == "{{ traits.first_name | default('Member') }}"

    # Step 4: the segment's size and reach, redrawn as it changes.
    assert "Choose a segment to see its size" in shop.client.get(f"{url}/step/4").text
    reach = shop.client.get(f"{url}/audience", params={"segment_id": str(shop.segment_id)}, headers=HTMX)
    assert reach.status_code == 200 and 'data-figure="size">2<' in reach.text
    assert post(shop, f"{url}/step/4", {"segment_id": ""}).status_code == 422
    assert post(shop, f"{url}/step/4", {"segment_id": str(shop.segment_id)}).status_code == 303

    # Step 5: at least one way, with the QR pattern and the web snippet explained.
    page = shop.client.get(f"{url}/step/5")
    assert (
        "/qr.svg" in page.text and "&lt;a href=" in page.text and "Download an example QR code" in page.text
    )
    refused = post(shop, f"{url}/step/5", {})
    assert refused.status_code == 422 and "Choose at least one way" in refused.text
    assert post(shop, f"{url}/step/5", {"qr": "on", "web": "on"}).status_code == 303

    # Step 6: the previews and the validation report; Step 7: the launch, confirmed.
    page = shop.client.get(f"{url}/step/6")
    assert (
        page.status_code == 200
        and 'data-wallet="wallet_apple"' in page.text
        and "members checked" in page.text
    )
    partial = shop.client.get(
        f"{url}/preview", params={"profile": shop.people["ann"], "language": "fr"}, headers=HTMX
    )
    assert partial.status_code == 200 and f'data-profile="{shop.people["ann"]}"' in partial.text
    page = shop.client.get(f"{url}/step/7")
    assert page.status_code == 200 and "I confirm" in page.text
    refused = post(shop, f"{url}/launch", {})
    assert refused.status_code == 422 and "Tick the box to confirm" in refused.text
    launched = post(shop, f"{url}/launch", {"confirm": "yes"})
    assert launched.headers["location"] == f"{url}/report" and audited("passes.operation.launch")
    run_due_jobs(TENANT, shop.database)

    with shop.session() as session:
        [operation] = session.exec(select(PassOperation)).all()
        assert operation.state == OperationState.launched
        assert len(session.exec(select(WalletPass)).all()) == 2
    report = shop.client.get(f"{url}/report")
    assert report.status_code == 200 and 'data-figure="issued-wallet_apple">2<' in report.text
    assert "keep updating after the operation ends" in report.text
    assert (
        shop.client.get(f"{url}/step/2", follow_redirects=False).status_code == 303
    )  # launched: no more edits
    exported = shop.client.get(f"{url}/report.csv")
    assert (
        exported.headers["content-type"].startswith("text/csv") and "issued,Apple Wallet,,2" in exported.text
    )
