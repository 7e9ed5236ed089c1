"""The card of a Google Wallet pass drawn with Pillow: the HTML preview's layout, at 2x (656 pixels wide).

Sizes below are in points of a 328-point-wide card (a 360-point phone less Google's margins),
multiplied by :data:`SCALE` when drawn, so the snapshot lines up with the HTML preview.
"""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont, ImageOps

from core.plugin_api import BarcodeMatrix, barcode_image, draw_text, preview_font
from tessera_wallet_google.preview_model import CardField, CardView, Picture, Rgb, code_size

SCALE = 2
WIDTH, PAD, RADIUS = 328, 16, 20
LOGO, TITLE, SUBHEADER, HEADING = 36, 14, 12, 22
LABEL, VALUE = 12, 16
NOTICE_HEIGHT = 30
CODE_PADDING, CODE_RADIUS, ALT = 12, 12, 12
HERO_RATIO = 336 / 1032  # Google's recommended hero image size
NOTICE_BACKGROUND: Rgb = (32, 33, 36)

# Roboto is what Google Wallet writes with on Android; Liberation Sans and DejaVu Sans next, then
# Pillow's own font when none is installed.
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
FONT_FILES = {
    "regular": (
        "roboto/unhinted/RobotoTTF/Roboto-Regular.ttf",
        "roboto/hinted/Roboto-Regular.ttf",
        "liberation/LiberationSans-Regular.ttf",
        "dejavu/DejaVuSans.ttf",
    ),
    "medium": (
        "roboto/unhinted/RobotoTTF/Roboto-Medium.ttf",
        "roboto/hinted/Roboto-Medium.ttf",
        "liberation/LiberationSans-Bold.ttf",
        "dejavu/DejaVuSans-Bold.ttf",
    ),
}


def font(weight: str, points: float) -> Font:
    """A sans-serif font of ``weight`` ("regular" or "medium") at ``points`` (in pixels at 2x)."""
    return preview_font(FONT_FILES[weight], round(points * SCALE))


def _px(points: float) -> int:
    return round(points * SCALE)


def _load(picture: Picture | None) -> Image.Image | None:
    if picture is None:
        return None
    try:
        return Image.open(io.BytesIO(picture.png)).convert("RGBA")
    except OSError:  # not a readable image: drawn without it, as Google would show none
        return None


def _round_logo(image: Image.Image) -> Image.Image:
    """The logo cropped to fill Google's circle."""
    size = _px(LOGO)
    logo = ImageOps.fit(image, (size, size), Image.Resampling.LANCZOS)
    mask = Image.new("L", (size * 4, size * 4), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, size * 4 - 1, size * 4 - 1), fill=255)
    mask = mask.resize((size, size), Image.Resampling.LANCZOS)  # drawn large then shrunk: a smooth edge
    logo.putalpha(Image.composite(logo.getchannel("A"), mask, mask))
    return logo


def _title(card: Image.Image, draw: ImageDraw.ImageDraw, view: CardView, top: int) -> int:
    """The logo and the title beside it; returns the bottom in pixels."""
    x, height = _px(PAD), _px(LOGO)
    if logo := _load(view.logo):
        card.alpha_composite(_round_logo(logo), (x, top))
        x += _px(LOGO + 12)
    face = font("regular", TITLE)
    draw_text(draw, x, top + (height - _px(TITLE * 1.2)) / 2, view.title, face, view.foreground,
          width=_px(WIDTH - PAD) - x)  # fmt: skip
    return top + height


def _field(draw: ImageDraw.ImageDraw, view: CardView, field: CardField, x: float, y: float, align: str,
           width: float) -> None:  # fmt: skip
    """A label over a value, as in the card's rows."""
    if field.label:
        draw_text(draw, x, y, field.label, font("regular", LABEL), view.foreground, align, width)
    draw_text(
        draw, x, y + _px(LABEL * 1.4), field.value, font("medium", VALUE), view.foreground, align, width
    )


def _rows(draw: ImageDraw.ImageDraw, view: CardView, top: int) -> int:
    """The card's rows: first field left, last right, others centred; returns the bottom."""
    gap = _px(12)
    for row in view.rows:
        top += _px(14)
        width = (_px(WIDTH - 2 * PAD) - gap * (len(row) - 1)) / len(row)
        for index, field in enumerate(row):
            left = _px(PAD) + index * (width + gap)
            if index == 0:
                _field(draw, view, field, left, top, "left", width)
            elif index == len(row) - 1:
                _field(draw, view, field, left + width, top, "right", width)
            else:
                _field(draw, view, field, left + width / 2, top, "center", width)
        top += _px(LABEL * 1.4 + VALUE * 1.3)
    return top


def _code(matrix: BarcodeMatrix) -> Image.Image:
    """The barcode at its display size, or a labelled placeholder when the message does not fit."""
    width, height = (_px(size) for size in code_size(matrix))
    if matrix.rows:
        return barcode_image(matrix, width, height).convert("RGBA")
    image = Image.new("RGBA", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width - 1, height - 1), outline=(153, 153, 153), width=_px(2))
    draw_text(draw, width / 2, height / 2 - _px(7), matrix.problem or "", font("regular", 11), (85, 85, 85),
          "center", width - _px(8))  # fmt: skip
    return image


def _barcode_box(view: CardView) -> Image.Image | None:
    """The white rounded box with the code and the text under it."""
    if view.barcode is None:
        return None
    code = _code(view.barcode)
    alt_h = _px(6 + ALT * 1.3) if view.barcode_text else 0
    width = max(code.width, _px(150)) + _px(2 * CODE_PADDING)
    box = Image.new("RGBA", (width, code.height + alt_h + _px(2 * CODE_PADDING)))
    draw = ImageDraw.Draw(box)
    draw.rounded_rectangle(
        (0, 0, box.width - 1, box.height - 1), radius=_px(CODE_RADIUS), fill=(255, 255, 255, 255)
    )
    box.alpha_composite(code, ((box.width - code.width) // 2, _px(CODE_PADDING)))
    if view.barcode_text:
        draw_text(draw, box.width / 2, _px(CODE_PADDING + 6) + code.height, view.barcode_text,
              font("regular", ALT), (60, 64, 67), "center", box.width - _px(8))  # fmt: skip
    return box


def _dim(card: Image.Image) -> Image.Image:
    """An invalid pass: the card greyed and faded, as Google shows passes that can no longer be used."""
    grey = ImageOps.grayscale(card.convert("RGB")).convert("RGB")
    faded = Image.blend(grey, Image.new("RGB", card.size, (255, 255, 255)), 0.35).convert("RGBA")
    faded.putalpha(card.getchannel("A"))
    return faded


def draw_card(view: CardView) -> bytes:
    """The front of the pass as PNG bytes, 656 pixels wide, transparent outside its rounded corners."""
    # Lay the card out on a generous canvas first: its height depends on what it holds.
    card = Image.new("RGBA", (_px(WIDTH), _px(1200)), view.background + (255,))
    draw = ImageDraw.Draw(card)
    top = _px(NOTICE_HEIGHT) if view.notice else 0
    y = _title(card, draw, view, top + _px(PAD))
    if view.subheader:
        y += _px(14)
        draw_text(draw, _px(PAD), y, view.subheader, font("regular", SUBHEADER), view.foreground,
              width=_px(WIDTH - 2 * PAD))  # fmt: skip
        y += _px(SUBHEADER * 1.4)
    if view.heading:
        y += _px(4 if view.subheader else 14)
        draw_text(draw, _px(PAD), y, view.heading, font("regular", HEADING), view.foreground,
              width=_px(WIDTH - 2 * PAD))  # fmt: skip
        y += _px(HEADING * 1.3)
    y = _rows(draw, view, y) + _px(PAD)
    if box := _barcode_box(view):
        y += _px(4)
        card.alpha_composite(box, ((card.width - box.width) // 2, y))
        y += box.height + _px(PAD)
    if hero := _load(view.hero):
        height = round(card.width * HERO_RATIO)
        card.alpha_composite(ImageOps.fit(hero, (card.width, height), Image.Resampling.LANCZOS), (0, y))
        y += height
    card = card.crop((0, 0, card.width, max(y, _px(120))))
    if view.notice:
        card = _dim(card)
        draw = ImageDraw.Draw(card)
        draw.rectangle((0, 0, card.width, _px(NOTICE_HEIGHT) - 1), fill=NOTICE_BACKGROUND + (255,))
        draw_text(draw, card.width / 2, (_px(NOTICE_HEIGHT) - _px(13 * 1.2)) / 2, view.notice,
              font("medium", 13), (255, 255, 255), "center", card.width - _px(2 * PAD))  # fmt: skip
    mask = Image.new("L", card.size, 0)
    ImageDraw.Draw(mask).rounded_rectangle(
        (0, 0, card.width - 1, card.height - 1), radius=_px(RADIUS), fill=255
    )
    card.putalpha(mask)
    out = io.BytesIO()
    card.save(out, format="PNG", optimize=True)
    return out.getvalue()
