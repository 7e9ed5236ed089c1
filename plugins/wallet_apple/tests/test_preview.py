"""The preview of an Apple pass: front and back in HTML as Wallet shows them, and a PNG of the front."""

from __future__ import annotations

import base64
import io
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any, Literal

import pytest
import segno
from PIL import Image
from tessera_wallet_apple.preview import preview, preview_html, preview_png

from core.plugin_api import PassBarcode, PassField, Preview, RenderedPass

NOW = datetime(2026, 6, 1, tzinfo=UTC)
NAVY, WHITE, GOLD = (20, 40, 80), (255, 255, 255), (255, 200, 0)


def png(width: int, height: int, color: tuple[int, int, int] = (200, 60, 60)) -> bytes:
    """A small solid PNG, as the core hands images over."""
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (*color, 255)).save(out, format="PNG")
    return out.getvalue()


def data_uri(content: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(content).decode("ascii")


LOGO, STRIP, THUMBNAIL, ICON = png(200, 60), png(750, 288, (90, 30, 140)), png(180, 180), png(58, 58)
ALL_IMAGES: dict[str, dict[int, bytes]] = {
    "icon": {1: png(29, 29), 2: ICON},
    "logo": {2: LOGO},
    "strip": {2: STRIP},
    "thumbnail": {2: THUMBNAIL},
}
FIELDS = (
    PassField(key="tier", area="header", label="Tier", value="Gold"),
    PassField(key="points", area="primary", label="Points", value="1250"),
    PassField(key="member", area="secondary", label="Member", value="Ada Lovelace"),
    PassField(key="since", area="auxiliary", label="Member since", value="2021"),
    PassField(key="site", area="back", label="Website", value="Our shop", link="https://shop.example/"),
    PassField(
        key="terms",
        area="back",
        label="Terms",
        value="Read https://shop.example/terms or mail help@shop.example",
    ),
)


def make_pass(**changes: Any) -> RenderedPass:
    """A storeCard with every part filled in; ``changes`` replace any of them."""
    values: dict[str, Any] = {
        "serial": "S-1",
        "authentication_token": "t" * 16,
        "style": "storeCard",
        "organization_name": "Lumière Café",
        "description": "Lumière loyalty card",
        "logo_text": "Lumière",
        "background_color": "rgb(20, 40, 80)",
        "foreground_color": "rgb(255, 255, 255)",
        "label_color": "rgb(255, 200, 0)",
        "fields": FIELDS,
        "barcode": PassBarcode(format="qr", message="TESS-000123", alt_text="Member TESS-000123"),
        "images": ALL_IMAGES,
        "language": "en",
        "translations": {
            "fr": {
                "Tier": "Niveau",
                "Gold": "Or",
                "Member": "Membre",
                "Member since": "Membre depuis",
                "Website": "Site web",
                "Our shop": "Notre boutique",
                "Points": "Points",
            },
        },  # fmt: skip
        "updated_at": NOW,
    }
    values.update(changes)
    return RenderedPass(**values)


def html_of(rendered: RenderedPass, language: str = "en") -> str:
    return preview_html(rendered, language, now=NOW)


def markup_of(rendered: RenderedPass, language: str = "en") -> str:
    """The preview's elements without its style sheet (whose selectors name the same classes)."""
    return re.sub(r"<style>.*?</style>", "", html_of(rendered, language), flags=re.S)


def image_of(rendered: RenderedPass, language: str = "en") -> Image.Image:
    return Image.open(io.BytesIO(preview_png(rendered, language, now=NOW)))


def pixel(image: Image.Image, x: int, y: int) -> tuple[int, ...]:
    """The colour at (x, y) as a tuple (RGBA: the last item is the alpha)."""
    value = image.getpixel((x, y))
    assert isinstance(value, tuple)
    return value


def svg_matrix(html: str) -> list[list[bool]]:
    """The dark modules drawn by the preview's barcode SVG, read back from its rectangles."""
    match = re.search(r"<svg class=\"apple-pass__code-svg\".*?</svg>", html, re.S)
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


# --- language ---------------------------------------------------------------------------------------
def test_the_french_preview_shows_french_labels_and_values_from_the_translations() -> None:
    html = html_of(make_pass(), "fr")
    assert "NIVEAU" in html and ">Or<" in html  # header label (upper-cased as Wallet does) and value
    assert "MEMBRE" in html and "MEMBRE DEPUIS" in html
    assert "Site web" in html and "Notre boutique" in html  # back labels keep their case
    assert "TIER" not in html and "MEMBER SINCE" not in html and "Our shop" not in html


def test_a_text_without_translation_is_shown_as_written() -> None:
    html = html_of(make_pass(), "fr")
    assert "Ada Lovelace" in html and ">Terms<" in html
    assert "TIER" in html_of(make_pass(), "de")  # no German table at all: the default language


def test_front_labels_are_upper_cased_and_back_labels_are_not() -> None:
    html = html_of(make_pass())
    assert '<span class="apple-pass__label">MEMBER SINCE</span>' in html
    assert "<dt>Website</dt>" in html


# --- safety -------------------------------------------------------------------------------------
def test_html_in_texts_is_escaped() -> None:
    evil = "<script>alert(1)</script>"
    html = html_of(
        make_pass(
            logo_text=evil,
            fields=(
                PassField(key="a", area="primary", label=evil, value=evil),
                PassField(key="b", area="back", label="Note", value=f'"><img src=x onerror=alert(1)>{evil}'),
            ),
            barcode=PassBarcode(format="qr", message="M", alt_text=evil),
        )
    )
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_back_links_are_anchors_and_script_links_are_not() -> None:
    fields = (
        *FIELDS,
        PassField(key="bad", area="back", label="Bad", value="Click me", link="javascript:alert(1)"),
    )
    html = html_of(make_pass(fields=fields))
    anchor = '<a href="{}" target="_blank" rel="noopener noreferrer">{}</a>'
    assert anchor.format("https://shop.example/", "Our shop") in html
    assert anchor.format("https://shop.example/terms", "https://shop.example/terms") in html  # detected
    assert anchor.format("mailto:help@shop.example", "help@shop.example") in html
    assert "javascript:" not in html and "Click me" in html


def test_the_preview_fetches_nothing_from_elsewhere_and_embeds_its_images() -> None:
    html = html_of(make_pass())
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html.replace('href="https://shop.example', ""))
    assert "<link" not in html and "<script" not in html and "url(http" not in html and "@import" not in html
    assert data_uri(LOGO) in html and data_uri(STRIP) in html and data_uri(ICON) in html


def test_images_use_the_2x_variant_else_the_largest() -> None:
    small, big = png(10, 10), png(30, 30)
    html = html_of(make_pass(images={"logo": {1: small, 3: big}, "icon": {1: small, 2: ICON, 3: big}}))
    assert data_uri(big) in html and data_uri(ICON) in html and data_uri(small) not in html


def test_every_style_rule_is_scoped_under_apple_pass() -> None:
    css = re.search(r"<style>(.*?)</style>", html_of(make_pass()), re.S)
    assert css
    rules = re.sub(r"/\*.*?\*/", "", css.group(1), flags=re.S)
    selectors = [s.strip() for block in re.findall(r"([^{}]+)\{", rules) for s in block.split(",")]
    assert selectors and all(s.startswith(".apple-pass") for s in selectors), selectors


def test_colours_come_from_the_pass_else_wallet_defaults() -> None:
    html = html_of(make_pass())
    assert "--ap-bg: rgb(20, 40, 80); --ap-fg: rgb(255, 255, 255); --ap-label: rgb(255, 200, 0)" in html
    plain = html_of(make_pass(background_color=None, foreground_color=None, label_color=None))
    assert "--ap-bg: rgb(255, 255, 255); --ap-fg: rgb(0, 0, 0); --ap-label: rgb(0, 0, 0)" in plain


# --- styles -------------------------------------------------------------------------------------
def test_a_store_card_has_its_logo_and_header_on_top_and_the_primary_value_over_the_strip() -> None:
    html = markup_of(make_pass())
    top = html.index('class="apple-pass__top"')
    assert top < html.index("apple-pass__logo") < html.index("apple-pass__header-fields")
    primary = html[html.index("apple-pass__primary--strip") :]
    assert primary.index("apple-pass__strip") < primary.index(">1250<") < primary.index(">POINTS<")
    assert "apple-pass__thumbnail" not in html  # store cards have no thumbnail
    # Secondary and auxiliary fields share one row on a store card.
    assert html.count('class="apple-pass__row"') == 1


def test_a_coupon_has_a_perforated_top_edge() -> None:
    html = markup_of(make_pass(style="coupon"))
    assert "apple-pass--coupon" in html and "apple-pass__strip" in html
    assert re.search(
        r"\.apple-pass--coupon \.apple-pass__front \{[^}]*mask: radial-gradient", html_of(make_pass())
    )
    image = image_of(make_pass(style="coupon"))
    assert pixel(image, 12, 1)[3] == 0  # a perforation hole
    assert pixel(image, 24, 1)[3] == 255  # between two holes


def test_an_event_ticket_has_the_notch_and_shows_a_thumbnail_without_strip() -> None:
    no_strip = {kind: image for kind, image in ALL_IMAGES.items() if kind != "strip"}
    html = markup_of(make_pass(style="eventTicket", images=no_strip))
    css = html_of(make_pass())
    assert re.search(r"\.apple-pass--eventTicket \.apple-pass__front \{[^}]*mask: radial-gradient", css)
    assert "apple-pass__primary--thumbnail" in html and data_uri(THUMBNAIL) in html
    assert html.count('class="apple-pass__row"') == 2  # secondary row, then auxiliary row
    image = image_of(make_pass(style="eventTicket"))
    assert pixel(image, image.width // 2, 4)[3] == 0  # the notch
    assert pixel(image, image.width // 2, 60)[3] == 255


def test_an_event_ticket_with_a_strip_shows_the_strip_not_the_thumbnail() -> None:
    html = markup_of(make_pass(style="eventTicket"))
    assert "apple-pass__primary--strip" in html and "apple-pass__thumbnail" not in html
    primary = html[html.index("apple-pass__primary--strip") :]
    assert primary.index(">POINTS<") < primary.index(">1250<")  # label above value


def test_a_generic_pass_puts_the_thumbnail_right_of_the_primary_field_and_has_no_strip() -> None:
    html = markup_of(make_pass(style="generic"))
    primary = html[html.index("apple-pass__primary") :]
    assert primary.index(">1250<") < primary.index("apple-pass__thumbnail")
    assert "apple-pass__strip" not in html and data_uri(STRIP) not in html


def test_wallet_shows_at_most_three_header_fields_and_four_fields_on_a_store_card_row() -> None:
    fields = tuple(PassField(key=f"h{i}", area="header", value=f"H{i}") for i in range(5)) + tuple(
        PassField(key=f"s{i}", area="secondary" if i < 3 else "auxiliary", value=f"S{i}") for i in range(6)
    )
    html = html_of(make_pass(fields=fields))
    assert ">H2<" in html and ">H3<" not in html
    assert ">S3<" in html and ">S4<" not in html


# --- validity -------------------------------------------------------------------------------------
def test_a_voided_pass_is_marked_as_wallet_does() -> None:
    html = html_of(make_pass(voided=True))
    assert "apple-pass--voided" in html and "This pass is no longer valid." in html
    assert '<p class="apple-pass__badge">Voided</p>' in html
    assert "Ce pass n’est plus valide." in html_of(make_pass(voided=True), "fr")
    assert "no longer valid" not in html_of(make_pass())


def test_the_expiration_date_shows_on_the_back_and_an_expired_pass_says_so() -> None:
    html = html_of(make_pass(expiration_date=datetime(2027, 1, 31, 12, tzinfo=UTC)))
    assert "<dt>Expires</dt><dd>Jan 31, 2027</dd>" in html and "has expired" not in html
    assert "<dd>31 janv. 2027</dd>" in html_of(
        make_pass(expiration_date=datetime(2027, 1, 31, tzinfo=UTC)), "fr"
    )
    expired = html_of(make_pass(expiration_date=datetime(2026, 1, 31, tzinfo=UTC)))
    assert "apple-pass--expired" in expired and "This pass has expired." in expired
    assert "<dt>Expired</dt>" in expired


# --- barcodes -------------------------------------------------------------------------------------
def test_the_qr_code_holds_the_message_module_for_module() -> None:
    html = html_of(make_pass())
    expected = [[bool(cell) for cell in row] for row in segno.make_qr("TESS-000123", error="m").matrix]
    assert svg_matrix(html) == expected
    assert '<figcaption class="apple-pass__alt">Member TESS-000123</figcaption>' in html


def test_aztec_pdf417_and_code128_are_real_codes_from_their_libraries() -> None:
    import aztec_code_generator
    from barcode.codex import Code128

    aztec = svg_matrix(html_of(make_pass(barcode=PassBarcode(format="aztec", message="TESS-000123"))))
    assert aztec == [[bool(c) for c in row] for row in aztec_code_generator.AztecCode("TESS-000123").matrix]
    code128 = svg_matrix(html_of(make_pass(barcode=PassBarcode(format="code128", message="TESS-000123"))))
    assert code128 == [[bit == "1" for bit in Code128("TESS-000123").build()[0]]]
    pdf417 = svg_matrix(html_of(make_pass(barcode=PassBarcode(format="pdf417", message="TESS-000123"))))
    assert len(pdf417) >= 3 and len(pdf417[0]) % 17 == 1  # rows of 17-module codewords and the stop bar


@pytest.mark.parametrize("code", ["qr", "aztec", "pdf417", "code128"])
def test_the_png_snapshot_barcode_scans(code: Literal["qr", "aztec", "pdf417", "code128"]) -> None:
    zxingcpp = pytest.importorskip("zxingcpp", reason="zxing-cpp decodes the snapshot's barcode")
    image = image_of(make_pass(barcode=PassBarcode(format=code, message="TESS-000123"))).convert("RGB")
    assert "TESS-000123" in [result.text for result in zxingcpp.read_barcodes(image)]


def test_a_message_the_format_cannot_hold_gets_a_labelled_placeholder() -> None:
    rendered = make_pass(barcode=PassBarcode(format="code128", message="日本"))
    html = html_of(rendered)
    assert "apple-pass__code-placeholder" in html and "Code 128 cannot hold this message" in html
    assert image_of(rendered).width == 640


# --- PNG and the whole preview ------------------------------------------------------------------
def test_the_png_is_the_front_at_2x_with_the_pass_background() -> None:
    image = image_of(make_pass())
    assert image.format == "PNG" and image.size == (640, 840)
    assert pixel(image.convert("RGB"), 12, image.height - 12) == NAVY
    assert pixel(image, 0, 0)[3] == 0  # outside the rounded corner
    strip_middle = pixel(image.convert("RGB"), 600, 200)
    assert strip_middle == (90, 30, 140)  # the strip under the primary field


def test_a_pass_without_optional_parts_still_renders() -> None:
    bare = make_pass(
        logo_text=None, background_color=None, foreground_color=None, label_color=None,
        fields=(), barcode=None, images={}, translations={},
    )  # fmt: skip
    html = markup_of(bare)
    assert "apple-pass--storeCard" in html and "<img" not in html and "<svg" not in html
    image = image_of(bare)
    assert image.size == (640, 840) and pixel(image.convert("RGB"), 12, 828) == WHITE


def test_preview_returns_the_html_and_the_png() -> None:
    result = preview(make_pass(), "fr", now=NOW)
    assert isinstance(result, Preview)
    assert "NIVEAU" in result.html and result.png is not None and result.png.startswith(b"\x89PNG")
