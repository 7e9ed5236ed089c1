"""The preview of a Google pass: the card and details list as Google Wallet shows them, and a PNG of the card."""

from __future__ import annotations

import base64
import io
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any, Literal

import pytest
from PIL import Image
from tessera_wallet_google.channel import GoogleWalletChannel
from tessera_wallet_google.preview import preview, preview_html, preview_png

from core.plugin_api import PassBarcode, PassField, Preview, RenderedPass, barcode_matrix

ISSUER = "3388000000012345678"
NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
EXPIRES = datetime(2031, 1, 1, tzinfo=UTC)
NAVY, HERO_PURPLE = (16, 32, 48), (90, 30, 140)
NOTICE_KEY = "tessera_notice"  # the core's key of the newest notice (core.passes.rendering)


def png(width: int, height: int, color: tuple[int, int, int]) -> bytes:
    """A solid PNG, as the core hands images over."""
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (*color, 255)).save(out, format="PNG")
    return out.getvalue()


def data_uri(content: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(content).decode("ascii")


LOGO, HERO = png(120, 120, (200, 60, 60)), png(1032, 336, HERO_PURPLE)
FRENCH = {
    "Shop Club": "Club Boutique",
    "Shop club card": "Carte du club",
    "Points": "Points fidélité",
    "Tier": "Niveau",
    "Gold": "Or",
    "Terms": "Conditions",
    "Valid in all stores": "Valable dans tous les magasins",
    "Website": "Site web",
    "Double points this weekend": "Points doublés ce week-end",
    "Concert": "Concert du soir",
    "Jazz night": "Soirée jazz",
}
FIELDS = (
    PassField(key="tier", area="header", label="Tier", value="Gold", role="tier"),
    PassField(key="points", area="primary", label="Points", value="1250", numeric=True, role="points"),
    PassField(key="member", area="secondary", label="Member", value="Ada Lovelace", role="member"),
    PassField(key="terms", area="back", label="Terms", value="Valid in all stores"),
    PassField(
        key="site", area="back", label="Website", value="shop.example.com", link="https://shop.example.com/"
    ),
    PassField(key=NOTICE_KEY, area="back", value="Double points this weekend", change_message="%@"),
)


def make_pass(**changes: Any) -> RenderedPass:
    """A store card (a Google loyalty card) with everything Google shows; ``changes`` replace any part."""
    values: dict[str, Any] = {
        "serial": f"{ISSUER}.preview",
        "authentication_token": "a" * 32,
        "style": "storeCard",
        "organization_name": "Shop Club",
        "description": "Shop club card",
        "background_color": "rgb(16, 32, 48)",
        "fields": FIELDS,
        "barcode": PassBarcode(format="qr", message="CUST-0042", alt_text="Member 0042"),
        "expiration_date": EXPIRES,
        "images": {"logo": {1: png(60, 60, (0, 0, 0)), 2: LOGO}, "strip": {2: HERO}},
        "template_key": "club_card",
        "language": "en",
        "translations": {"fr": FRENCH},
        "updated_at": NOW,
    }
    values.update(changes)
    return RenderedPass(**values)


def html_of(rendered: RenderedPass, language: str = "en", now: datetime = NOW) -> str:
    return preview_html(rendered, language, now=now)


def markup_of(rendered: RenderedPass, language: str = "en", now: datetime = NOW) -> str:
    """The preview's elements without its style sheet (whose selectors name the same classes)."""
    return re.sub(r"<style>.*?</style>", "", html_of(rendered, language, now), flags=re.S)


def image_of(rendered: RenderedPass, language: str = "en", now: datetime = NOW) -> Image.Image:
    return Image.open(io.BytesIO(preview_png(rendered, language, now=now)))


def field_html(key: str, label: str, value: str) -> str:
    return (
        f'<div class="google-pass__field" data-key="{key}"><span class="google-pass__label">{label}</span>'
        f'<span class="google-pass__value">{value}</span>'
    )


def module_html(key: str, header: str, body: str, kind: str = "text") -> str:
    return (
        f'<li class="google-pass__module google-pass__module--{kind}" data-key="{key}">'
        f'<strong class="google-pass__module-header">{header}</strong>'
        f'<p class="google-pass__module-body">{body}</p></li>'
    )


def svg_matrix(html: str) -> list[list[bool]]:
    """The dark modules drawn by the preview's barcode SVG, read back from its rectangles."""
    match = re.search(r"<svg class=\"google-pass__code-svg\".*?</svg>", html, re.S)
    assert match, "the preview has no barcode SVG"
    svg = ET.fromstring(match.group(0))
    width, height = (int(n) for n in svg.attrib["viewBox"].split()[2:])
    row_height = int(svg.attrib["data-row-height"])
    grid = [[False] * width for _ in range(height // row_height)]
    for rect in svg.iter("{http://www.w3.org/2000/svg}rect"):
        if "x" not in rect.attrib:  # the white background
            continue
        x, y, w = int(rect.attrib["x"]), int(rect.attrib["y"]), int(rect.attrib["width"])
        for column in range(x, x + w):
            grid[y // row_height][column] = True
    return grid


def decoded(image: Image.Image) -> list[str]:
    zxingcpp = pytest.importorskip("zxingcpp", reason="zxing-cpp decodes the snapshot's barcode")
    return [result.text for result in zxingcpp.read_barcodes(image.convert("RGB"))]


# --- the loyalty card ------------------------------------------------------------------------------
def test_a_loyalty_card_shows_logo_issuer_program_points_account_barcode_and_hero() -> None:
    html = markup_of(make_pass())
    assert "google-pass--loyalty" in html and 'data-state="ACTIVE"' in html
    assert f'<img class="google-pass__logo" src="{data_uri(LOGO)}" alt="Shop Club">' in html
    assert '<span class="google-pass__issuer">Shop Club</span>' in html
    assert '<p class="google-pass__heading">Shop club card</p>' in html
    assert field_html("loyaltyPoints", "Points", "1,250") in html  # Google formats a whole balance
    assert field_html("accountName", "Member name", "Ada Lovelace") in html
    assert field_html("accountId", "Member ID", "CUST-0042") in html
    assert '<figcaption class="google-pass__alt">Member 0042</figcaption>' in html
    assert f'<img class="google-pass__hero" src="{data_uri(HERO)}" alt="Shop club card">' in html
    # Card order as Google lays it out: title, program, rows, barcode, hero.
    order = ["google-pass__issuer", "google-pass__heading", "loyaltyPoints", "accountName", "google-pass__barcode",
             "google-pass__hero", "google-pass__details"]  # fmt: skip
    positions = [html.index(marker) for marker in order]
    assert positions == sorted(positions)


def test_the_french_preview_shows_the_french_texts_and_numbers() -> None:
    html = markup_of(make_pass(), "fr")
    assert 'lang="fr"' in html
    assert field_html("loyaltyPoints", "Points fidélité", "1\u202f250") in html
    assert '<span class="google-pass__issuer">Club Boutique</span>' in html
    assert '<p class="google-pass__heading">Carte du club</p>' in html
    assert module_html("terms", "Conditions", "Valable dans tous les magasins") in html
    assert field_html("accountName", "Nom du membre", "Ada Lovelace") in html  # Google's own words, in French
    assert ">Points<" not in html and "Valid in all stores" not in html


def test_a_language_without_translations_shows_the_default_texts() -> None:
    html = markup_of(make_pass(), "de")
    assert field_html("loyaltyPoints", "Points", "1.250") in html  # German number, English label
    assert '<p class="google-pass__heading">Shop club card</p>' in html


def test_only_texts_google_can_translate_are_translated() -> None:
    """Text modules carry translations; the account name and the barcode's text have no place for one."""
    html = markup_of(make_pass(), "fr")
    assert module_html("tier", "Niveau", "Or") in html
    assert "Ada Lovelace" in html and "Member 0042" in html


# --- the details list -----------------------------------------------------------------------------
def test_details_list_messages_text_modules_validity_and_links() -> None:
    html = markup_of(make_pass())
    details = html[html.index('<section class="google-pass__details"') :]
    assert module_html("notice", "Shop Club", "Double points this weekend", "message") in details
    assert module_html("tier", "Tier", "Gold") in details
    assert module_html("terms", "Terms", "Valid in all stores") in details
    assert (
        '<strong class="google-pass__module-header">Valid until</strong>' in details
        and "Jan 1, 2031" in details
    )
    assert (
        '<a href="https://shop.example.com/" target="_blank" rel="noopener noreferrer">Website</a>' in details
    )


def test_script_links_are_not_anchors() -> None:
    fields = (*FIELDS, PassField(key="bad", area="back", label="Bad", value="x", link="javascript:alert(1)"))
    html = markup_of(make_pass(fields=fields))
    assert "javascript:" not in html and "<span>Bad</span>" in html


def test_a_pass_without_details_has_no_details_list() -> None:
    bare = make_pass(fields=(), expiration_date=None)
    assert "google-pass__details" not in markup_of(bare)


# --- safety ---------------------------------------------------------------------------------------
def test_html_in_texts_is_escaped() -> None:
    evil = "<script>alert(1)</script>"
    fields = (
        PassField(key="points", area="primary", label=evil, value=evil, numeric=True, role="points"),
        PassField(key="member", area="secondary", label="Member", value=evil, role="member"),
        PassField(key="note", area="back", label=evil, value=f'"><img src=x onerror=alert(1)>{evil}'),
        PassField(key="site", area="back", label=evil, value="v", link="https://shop.example.com/"),
    )
    html = html_of(
        make_pass(
            organization_name=evil,
            description=evil,
            fields=fields,
            barcode=PassBarcode(format="qr", message="M", alt_text=evil),
        )
    )
    assert "<script>" not in html and "<img src=x" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 8


def test_the_preview_fetches_nothing_and_embeds_its_images() -> None:
    html = markup_of(make_pass(image_urls={"logo": "https://cdp.example.com/logo@2x.png"}))
    assert not re.search(r"""src=["']?(https?:)?//""", html)
    assert "<link" not in html and "<script" not in html and "url(http" not in html
    assert data_uri(LOGO) in html and data_uri(HERO) in html  # the @2x logo, as Google fetches


def test_every_style_rule_is_scoped_under_google_pass() -> None:
    css = re.search(r"<style>(.*?)</style>", html_of(make_pass()), re.S)
    assert css
    rules = re.sub(r"/\*.*?\*/", "", css.group(1), flags=re.S)
    selectors = [s.strip() for block in re.findall(r"([^{}]+)\{", rules) for s in block.split(",")]
    assert selectors and all(s.startswith(".google-pass") for s in selectors), selectors


# --- state ----------------------------------------------------------------------------------------
def test_a_voided_pass_says_it_is_no_longer_valid() -> None:
    html = markup_of(make_pass(voided=True))
    assert 'data-state="INACTIVE"' in html and "google-pass--invalid" in html
    assert '<p class="google-pass__notice" role="status">This pass is no longer valid</p>' in html
    assert "Cette carte n’est plus valide" in markup_of(make_pass(voided=True), "fr")
    assert "google-pass__notice" not in markup_of(make_pass())


def test_a_pass_past_its_expiration_says_it_has_expired() -> None:
    html = markup_of(make_pass(), now=datetime(2031, 2, 1, tzinfo=UTC))
    assert 'data-state="EXPIRED"' in html and "This pass has expired" in html


def test_an_invalid_pass_png_has_the_notice_band_and_a_greyed_card() -> None:
    active, voided = image_of(make_pass()).convert("RGB"), image_of(make_pass(voided=True)).convert("RGB")
    assert voided.getpixel((voided.width // 2, 4)) == (32, 33, 36)  # the notice band
    r, g, b = voided.getpixel((20, voided.height // 3))  # type: ignore[misc]
    assert r == g == b and active.getpixel((20, active.height // 3)) == NAVY


# --- the other kinds --------------------------------------------------------------------------------
def test_an_event_ticket_is_a_generic_pass_with_card_title_subheader_and_header() -> None:
    fields = (PassField(key="event", area="primary", label="Concert", value="Jazz night"), *FIELDS[3:])
    html = markup_of(make_pass(style="eventTicket", fields=fields), "fr")
    assert "google-pass--generic" in html
    assert '<span class="google-pass__issuer">Club Boutique</span>' in html  # cardTitle
    assert '<p class="google-pass__subheader">Concert du soir</p>' in html
    assert '<p class="google-pass__heading">Soirée jazz</p>' in html
    assert html.index("google-pass__subheader") < html.index("google-pass__heading")


def test_a_coupon_is_an_offer_with_provider_and_title() -> None:
    html = markup_of(make_pass(style="coupon"))
    assert "google-pass--offer" in html
    assert '<span class="google-pass__issuer">Shop Club</span>' in html
    assert '<p class="google-pass__heading">Shop club card</p>' in html
    assert "google-pass__field" not in html  # an offer's card has no rows by default


def test_a_gift_card_shows_its_balance_and_card_number() -> None:
    fields = (
        PassField(key="number", area="secondary", label="Card", value="6006123412341234", role="member"),
        PassField(key="balance", area="primary", label="Balance", value="25.50", numeric=True, role="points"),
    )
    rendered = make_pass(fields=fields, wallet_settings={"kind": "giftCard", "currency": "EUR"})
    html = markup_of(rendered)
    assert "google-pass--giftCard" in html
    assert '<p class="google-pass__heading">€25.50</p>' in html
    assert field_html("cardNumber", "Card number", "6006123412341234") in html
    assert '<p class="google-pass__heading">25,50\xa0€</p>' in markup_of(rendered, "fr")


# --- colours ---------------------------------------------------------------------------------------
def test_colours_come_from_the_pass_with_text_google_picks_for_contrast() -> None:
    assert "--gp-bg: rgb(16, 32, 48); --gp-fg: rgb(255, 255, 255)" in html_of(make_pass())
    light = html_of(make_pass(background_color="#f0e0c0"))
    assert "--gp-bg: rgb(240, 224, 192); --gp-fg: rgb(32, 33, 36)" in light


def test_without_a_colour_google_takes_the_hero_images_dominant_colour() -> None:
    html = html_of(make_pass(background_color=None))
    assert "--gp-bg: rgb(90, 30, 140)" in html


# --- barcodes -------------------------------------------------------------------------------------
def test_the_html_barcode_is_the_objects_code_module_for_module() -> None:
    html = markup_of(make_pass())
    expected = barcode_matrix(PassBarcode(format="qr", message="CUST-0042"))
    assert svg_matrix(html) == [list(row) for row in expected.rows]
    assert 'width="150" height="150"' in html


@pytest.mark.parametrize("code", ["qr", "aztec", "pdf417", "code128"])
def test_the_png_barcode_scans(code: Literal["qr", "aztec", "pdf417", "code128"]) -> None:
    image = image_of(make_pass(barcode=PassBarcode(format=code, message="CUST-0042")))
    assert "CUST-0042" in decoded(image)


def test_a_message_the_format_cannot_hold_gets_a_labelled_placeholder() -> None:
    rendered = make_pass(barcode=PassBarcode(format="code128", message="日本"))
    html = markup_of(rendered)
    assert "google-pass__code-placeholder" in html and "Code 128 cannot hold this message" in html
    assert "<svg" not in html and image_of(rendered).width == 656


# --- the PNG and the whole preview ----------------------------------------------------------------
def test_the_png_is_the_card_at_2x_with_the_pass_background_and_hero() -> None:
    image = image_of(make_pass())
    assert image.format == "PNG" and image.mode == "RGBA"
    assert image.width == 656 and 700 <= image.height <= 1100
    assert image.getpixel((0, 0))[3] == 0  # type: ignore[index]  # outside the rounded corner
    rgb = image.convert("RGB")
    assert rgb.getpixel((40, 200)) == NAVY
    assert rgb.getpixel((image.width // 2, image.height - 30)) == HERO_PURPLE  # the hero closes the card


def test_a_pass_without_optional_parts_still_renders() -> None:
    bare = make_pass(background_color=None, fields=(), barcode=None, images={}, translations={},
                     expiration_date=None)  # fmt: skip
    html = markup_of(bare)
    assert "<img" not in html and "<svg" not in html and "google-pass__details" not in html
    image = image_of(bare)
    assert image.width == 656 and 200 <= image.height <= 400
    assert decoded(image) == []


def test_preview_and_the_channel_return_the_html_and_the_png() -> None:
    result = preview(make_pass(), "fr", now=NOW)
    assert isinstance(result, Preview) and "Points fidélité" in result.html
    assert result.png is not None and result.png.startswith(b"\x89PNG")
    from_channel = GoogleWalletChannel().preview_pass(make_pass(), "fr")
    assert from_channel.html == result.html and from_channel.png == result.png
