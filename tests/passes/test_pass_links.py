"""Public pass links: the landing page offers the right button for the visitor's phone, the
download is a signed pass, the QR code leads to the page, and forged links lead nowhere."""

from __future__ import annotations

import io
import zipfile
from urllib.parse import urlsplit

from PIL import Image
from tessera_wallet_apple.testchain import chain

from core.delivery.recipients import load_recipients
from core.messages.personalization import MessageTemplate, render
from core.passes.links import download_url, landing_url, link_token, read_link
from tests.passes.shop import TENANT, Shop
from tests.support import bearer

IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
ANDROID = "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 Chrome/130 Mobile Safari/537.36"
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130 Safari/537.36"


def _path(url: str) -> str:
    """The path of a public URL, as the test client asks for it."""
    return urlsplit(url).path


def test_the_first_visit_issues_the_pass_and_each_visit_counts(shop: Shop) -> None:
    ann = shop.customer("ann")
    page = _path(landing_url(TENANT, shop.template.id or 0, ann))
    with shop.installation.client() as client:
        on_iphone = client.get(page, headers={"User-Agent": IPHONE})
        assert on_iphone.status_code == 200
        assert (
            'class="wallet-button wallet-apple primary"' in on_iphone.text and "qr.svg" not in on_iphone.text
        )
        on_desktop = client.get(page, headers={"User-Agent": DESKTOP})
        assert "qr.svg" in on_desktop.text  # scan it to open the page on the phone
        on_android = client.get(page, headers={"User-Agent": ANDROID})
        assert "may not open on this phone" in on_android.text
        download = client.get(
            _path(download_url(TENANT, shop.template.id or 0, ann)), headers={"User-Agent": IPHONE}
        )
        assert (
            download.status_code == 200 and download.headers["content-type"] == "application/vnd.apple.pkpass"
        )
        assert "attachment" in download.headers["content-disposition"]
        with zipfile.ZipFile(io.BytesIO(download.content)) as pkpass:
            assert {"pass.json", "manifest.json", "signature", "fr.lproj/pass.strings"} <= set(
                pkpass.namelist()
            )
    held = shop.pass_of(ann)
    assert held is not None
    assert shop.activity(held.serial) == ["issued", "clicked", "clicked", "clicked", "downloaded"]


def test_the_qr_code_is_an_image_of_the_landing_page(shop: Shop) -> None:
    ann = shop.customer("ann")
    page = _path(landing_url(TENANT, shop.template.id or 0, ann))
    with shop.installation.client() as client:
        svg = client.get(page + "/qr.svg")
        assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
        png = client.get(page + "/qr.png")
        assert png.status_code == 200
        image = Image.open(io.BytesIO(png.content))
        assert image.format == "PNG" and image.width == image.height >= 200
        assert client.get(page + "/qr.gif").status_code == 404


def test_forged_or_foreign_links_lead_nowhere_and_issue_nothing(shop: Shop) -> None:
    ann = shop.customer("ann")
    token = link_token(TENANT, shop.template.id or 0, ann)
    forged = link_token("elsewhere", shop.template.id or 0, ann)
    with shop.installation.client() as client:
        assert client.get(f"/w/{TENANT}/{forged}").status_code == 404
        assert client.get(f"/w/{TENANT}/{token[:-2]}xx").status_code == 404
        assert client.get(f"/w/{TENANT}/garbage").status_code == 404
        assert client.get(f"/w/nosuchtenant/{token}").status_code == 404
    assert shop.pass_of(ann) is None


def test_a_revoked_pass_is_not_offered_again(shop: Shop) -> None:
    ann = shop.customer("ann")
    with shop.installation.client() as client:
        serial = client.post("/api/v1/passes", headers=bearer(shop.token),
                             json={"template_id": shop.template.id, "profile_id": ann}).json()["serial"]  # fmt: skip
        client.post(f"/api/v1/passes/{serial}/void", headers=bearer(shop.token), json={"reason": "fraud"})
        page = client.get(_path(landing_url(TENANT, shop.template.id or 0, ann)))
        assert page.status_code == 410 and "withdrawn" in page.text


def test_any_message_can_carry_the_profiles_add_to_wallet_link(shop: Shop) -> None:
    ann = shop.customer("ann")
    template = MessageTemplate(variants={"en": {"body": "Your card: {{ wallet.club_card }}"}}, fallback="en")
    people = load_recipients(shop.session.connection(), [ann], "push_fcm", None, tenant=TENANT)
    _, fields = render(template, people[ann].context(), None)
    assert fields["body"] == "Your card: " + landing_url(TENANT, shop.template.id or 0, ann)
    assert read_link(TENANT, fields["body"].rsplit("/", 1)[1]) is not None


def test_clicks_downloads_and_installs_are_counted_per_template(shop: Shop) -> None:
    ann, bob = shop.customer("ann"), shop.customer("bob")
    with shop.installation.client() as client:
        for person in (ann, bob):
            client.get(
                _path(landing_url(TENANT, shop.template.id or 0, person)), headers={"User-Agent": IPHONE}
            )
        client.get(_path(download_url(TENANT, shop.template.id or 0, ann)), headers={"User-Agent": IPHONE})
        held = shop.pass_of(ann)
        assert held is not None
        registration = (f"/x/{TENANT}/wallet_apple/v1/devices/d1/registrations/"
                        f"{chain().pass_type_identifier}/{held.serial}")  # fmt: skip
        client.post(registration, headers={"Authorization": f"ApplePass {held.authentication_token}"},
                    json={"pushToken": "ab" * 32})  # fmt: skip
        [card] = client.get("/api/v1/pass-templates", headers=bearer(shop.token)).json()
    counts = card["counts"]
    assert (counts["issued"], counts["clicked"], counts["downloaded"], counts["installed"]) == (2, 2, 1, 1)
    assert (counts["passes_active"], counts["installed_now"]) == (2, 1)
