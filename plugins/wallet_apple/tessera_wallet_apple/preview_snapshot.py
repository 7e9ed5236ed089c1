"""The front of a pass drawn with Pillow: the same layout as the HTML preview, at 2x (640 pixels wide).

Sizes below are in points of a 320-point-wide pass, multiplied by :data:`SCALE` when drawn, so the
snapshot lines up with the HTML preview and with Wallet on an iPhone.
"""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont, ImageOps

from core.plugin_api import CODE128_HEIGHT, BarcodeMatrix, barcode_image, draw_text, preview_font
from tessera_wallet_apple.preview_model import FieldView, PassView

SCALE = 2
WIDTH, MIN_HEIGHT, PAD = 320, 420, 14
TOP_ROW = 62
LABEL, VALUE, PRIMARY_LABEL = 10, 17, 11
CODE_PADDING, BOTTOM = 9, 16

# Liberation Sans is metric-compatible with Helvetica, the closest free relative of Wallet's SF;
# DejaVu Sans next; Pillow's own font when neither is installed.
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
FONT_FILES = {
    "regular": ("liberation/LiberationSans-Regular.ttf", "dejavu/DejaVuSans.ttf"),
    "bold": ("liberation/LiberationSans-Bold.ttf", "dejavu/DejaVuSans-Bold.ttf"),
}


def font(weight: str, points: float) -> Font:
    """A sans-serif font of ``weight`` ("regular" or "bold") at ``points`` (in pixels at 2x)."""
    return preview_font(FONT_FILES[weight], round(points * SCALE))


def _px(points: float) -> int:
    return round(points * SCALE)


def _load(png: bytes | None) -> Image.Image | None:
    if not png:
        return None
    try:
        return Image.open(io.BytesIO(png)).convert("RGBA")
    except OSError:  # not a readable PNG: drawn without it, as Wallet would refuse it anyway
        return None


def _contain(image: Image.Image, width: int, height: int) -> Image.Image:
    image = image.copy()
    image.thumbnail((width, height), Image.Resampling.LANCZOS)
    return image


def _field(
    draw: ImageDraw.ImageDraw, view: PassView, field: FieldView, x: float, y: float, align: str, width: float
) -> None:
    """A label over a value, as in the header and in the secondary and auxiliary rows."""
    if field.label:
        draw_text(draw, x, y, field.caption, font("bold", LABEL), view.label_color, align, width)
    draw_text(
        draw, x, y + _px(LABEL * 1.3), field.value, font("regular", VALUE), view.foreground, align, width
    )


def _header(card: Image.Image, draw: ImageDraw.ImageDraw, view: PassView) -> None:
    """Logo and logo text top left, header fields top right."""
    right: float = _px(WIDTH - PAD)
    for field in reversed(view.header):
        face_w = max(
            draw.textlength(field.caption, font=font("bold", LABEL)),
            draw.textlength(field.value, font=font("regular", VALUE)),
        )
        width = min(face_w, _px(110))
        _field(draw, view, field, right, _px(TOP_ROW / 2 - 16), "right", width)
        right -= width + _px(12)
    x = _px(PAD)
    if logo := _load(view.images.get("logo")):
        logo = _contain(logo, _px(160), _px(50))
        card.alpha_composite(logo, (x, (_px(TOP_ROW) - logo.height) // 2))
        x += logo.width + _px(8)
    if view.logo_text:
        face = font("bold", VALUE)
        draw_text(
            draw, x, _px(TOP_ROW / 2 - 10), view.logo_text, face, view.foreground, width=right - x - _px(10)
        )


def _primary(card: Image.Image, draw: ImageDraw.ImageDraw, view: PassView, top: int) -> int:
    """The primary field over the strip or beside the thumbnail; returns the bottom in pixels."""
    big = view.style in ("storeCard", "coupon")
    value_face = font("regular", 44 if big else 30)
    label_face = font("bold", PRIMARY_LABEL)
    value_h, label_h = _px((44 if big else 30) * 1.15), _px(PRIMARY_LABEL * 1.4)
    field = view.primary[0] if view.primary else None
    block = (value_h + (label_h if field and field.label else 0)) if field else 0
    text_width = _px(WIDTH - 2 * PAD)
    strip, thumbnail = _load(view.strip), _load(view.thumbnail)
    if strip is not None:
        height = _px(view.strip_height)
        card.alpha_composite(ImageOps.fit(strip, (card.width, height), Image.Resampling.LANCZOS), (0, top))
        text_top = top + (height - block) // 2
    else:
        height = 0
        if thumbnail is not None:
            thumbnail = _contain(thumbnail, _px(90), _px(90))
            card.alpha_composite(thumbnail, (_px(WIDTH - PAD) - thumbnail.width, top + _px(6)))
            text_width -= thumbnail.width + _px(10)
            height = thumbnail.height + _px(16)
        height = max(height, block + _px(16)) if field else height
        text_top = top + _px(6)
    if field is not None:
        x, y = _px(PAD), text_top
        # storeCard and coupon print the value above its label; the other styles the label first.
        if big:
            draw_text(draw, x, y, field.value, value_face, view.foreground, width=text_width)
            if field.label:
                draw_text(draw, x, y + value_h, field.caption, label_face, view.label_color, width=text_width)
        else:
            if field.label:
                draw_text(draw, x, y, field.caption, label_face, view.label_color, width=text_width)
                y += label_h
            draw_text(draw, x, y, field.value, value_face, view.foreground, width=text_width)
    return top + height


def _rows(draw: ImageDraw.ImageDraw, view: PassView, top: int) -> int:
    """Secondary and auxiliary rows: first field left, last right, others centred."""
    gap = _px(10)
    for row in view.rows:
        top += _px(8)
        width = (_px(WIDTH - 2 * PAD) - gap * (len(row) - 1)) / len(row)
        for index, field in enumerate(row):
            left = _px(PAD) + index * (width + gap)
            if index == 0:
                _field(draw, view, field, left, top, "left", width)
            elif index == len(row) - 1:
                _field(draw, view, field, left + width, top, "right", width)
            else:
                _field(draw, view, field, left + width / 2, top, "center", width)
        top += _px(LABEL * 1.3 + VALUE * 1.2)
    return top


def _code(matrix: BarcodeMatrix, dimmed: bool) -> Image.Image:
    """The barcode (or a labelled placeholder) at its display size, dimmed on an invalid pass."""
    width, height = (_px(size) for size in matrix.display_size())
    if matrix.rows:
        image = barcode_image(matrix, width, _px(CODE128_HEIGHT) if matrix.format == "code128" else height)
    else:
        image = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(image)
        draw.rectangle((0, 0, width - 1, height - 1), outline=(153, 153, 153), width=_px(2))
        draw_text(draw, width / 2, height / 2 - _px(7), matrix.problem or "", font("regular", 11), (85, 85, 85),
              "center", width - _px(8))  # fmt: skip
    if dimmed:
        image = Image.blend(image.convert("RGB"), Image.new("RGB", image.size, "white"), 0.75)
    return image.convert("RGBA")


def _barcode_block(view: PassView) -> tuple[Image.Image | None, int]:
    """The white box with the code and its alternative text, and the block's height with the notice."""
    if view.barcode is None:
        return None, (_px(13 * 1.3) if view.notice else 0)
    code = _code(view.barcode, dimmed=view.notice is not None)
    alt_h = _px(4 + 11 * 1.3) if view.alt_text else 0
    box = Image.new("RGBA", (code.width + _px(2 * CODE_PADDING), code.height + alt_h + _px(2 * CODE_PADDING)))
    draw = ImageDraw.Draw(box)
    draw.rounded_rectangle((0, 0, box.width - 1, box.height - 1), radius=_px(6), fill=(255, 255, 255, 255))
    box.alpha_composite(code, (_px(CODE_PADDING), _px(CODE_PADDING)))
    if view.alt_text:
        draw_text(draw, box.width / 2, _px(CODE_PADDING + 4) + code.height, view.alt_text, font("regular", 11),
              (0, 0, 0), "center", box.width - _px(8))  # fmt: skip
    return box, box.height + (_px(6 + 13 * 1.3) if view.notice else 0)


def _shape(view: PassView, size: tuple[int, int]) -> Image.Image:
    """The card's outline as an alpha mask: rounded corners, a coupon's perforation, a ticket's notch."""
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    radius = _px(10)
    if view.style == "coupon":
        draw.rounded_rectangle(
            (0, 0, size[0] - 1, size[1] - 1), radius=radius, fill=255, corners=(False, False, True, True)
        )
        hole, step = _px(4), _px(12)
        for center in range(step // 2, size[0], step):
            draw.ellipse((center - hole, -hole, center + hole, hole), fill=0)
    else:
        draw.rounded_rectangle((0, 0, size[0] - 1, size[1] - 1), radius=radius, fill=255)
    if view.style == "eventTicket":
        notch, middle = _px(20), size[0] // 2
        draw.ellipse((middle - notch, -notch, middle + notch, notch), fill=0)
    return mask


def draw_front(view: PassView) -> bytes:
    """The front of the pass as PNG bytes, 640 pixels wide, transparent outside the card's outline."""
    box, block = _barcode_block(view)
    # Lay the top out on a generous canvas first: the card's height depends on what it holds.
    card = Image.new("RGBA", (_px(WIDTH), _px(MIN_HEIGHT) * 3), view.background + (255,))
    draw = ImageDraw.Draw(card)
    _header(card, draw, view)
    bottom = _rows(draw, view, _primary(card, draw, view, _px(TOP_ROW)))
    needed = bottom + _px(14) + block + _px(BOTTOM) if block else bottom + _px(BOTTOM)
    card = card.crop((0, 0, card.width, max(_px(MIN_HEIGHT), needed)))
    draw = ImageDraw.Draw(card)
    y = card.height - _px(BOTTOM) - block
    if box is not None:
        card.alpha_composite(box, ((card.width - box.width) // 2, y))
        y += box.height + _px(6)
    if view.notice:
        draw_text(
            draw,
            card.width / 2,
            y,
            view.notice,
            font("bold", 13),
            view.foreground,
            "center",
            card.width - _px(2 * PAD),
        )
    card.putalpha(_shape(view, card.size))
    out = io.BytesIO()
    card.save(out, format="PNG", optimize=True)
    return out.getvalue()
