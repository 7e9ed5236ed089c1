"""Drawing pass previews with Pillow: fonts found on the machine, texts cut to fit a width.

Both wallets' PNG snapshots use these (through ``core.plugin_api``); each names the fonts closest
to its wallet's own.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PIL import ImageDraw, ImageFont

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
Colour = tuple[int, int, int] | tuple[int, int, int, int]
FONT_DIRS = (Path("/usr/share/fonts/truetype"), Path("/usr/local/share/fonts"))


@cache
def preview_font(files: tuple[str, ...], pixels: int) -> Font:
    """The first of these font files that is installed (paths under the system font folders) at
    ``pixels``; Pillow's own font when none is."""
    for name in files:
        for folder in FONT_DIRS:
            if (folder / name).is_file():
                return ImageFont.truetype(str(folder / name), pixels)
    try:
        return ImageFont.load_default(size=pixels)
    except (TypeError, ValueError, OSError):  # Pillow built without FreeType: its fixed bitmap font
        return ImageFont.load_default()


def fit_text(draw: ImageDraw.ImageDraw, text: str, face: Font, width: float) -> str:
    """``text``, cut with an ellipsis to fit ``width`` pixels, as wallets truncate long values."""
    if draw.textlength(text, font=face) <= width:
        return text
    while text and draw.textlength(text + "…", font=face) > width:
        text = text[:-1]
    return text + "…"


def draw_text(
    draw: ImageDraw.ImageDraw,
    x: float,
    y: float,
    text: str,
    face: Font,
    fill: Colour,
    align: str = "left",
    width: float | None = None,
) -> None:
    """Draw ``text`` with its top at ``y``, its ``align`` edge at ``x``, cut to ``width`` pixels."""
    if width is not None:
        text = fit_text(draw, text, face, width)
    length = draw.textlength(text, font=face)
    left = {"left": x, "right": x - length, "center": x - length / 2}[align]
    draw.text((left, y), text, font=face, fill=fill)
