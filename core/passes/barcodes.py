"""The barcode of a pass preview as a grid of dark and light modules, drawn as SVG or with Pillow.

Each format is encoded by a well-kept library (segno for QR, pdf417gen, aztec_code_generator,
python-barcode for Code 128); this module only turns their output into one shape, a
:class:`BarcodeMatrix`, so the HTML and the PNG previews of every wallet draw every format the
same way. Wallet plugins import it through :mod:`core.plugin_api`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import aztec_code_generator
import pdf417gen
import segno
from barcode.codex import Code128
from PIL import Image, ImageDraw

from core.passes.contract import PassBarcode

# Apple Wallet draws 2D codes square and PDF417 / Code 128 wide; sizes in points, as it shows them.
# Other wallets pass their own sizes to the drawing functions.
DISPLAY_WIDTH = {"qr": 124, "aztec": 124, "pdf417": 250, "code128": 250}
CODE128_HEIGHT = 56
FORMAT_NAMES = {"qr": "QR", "aztec": "Aztec", "pdf417": "PDF417", "code128": "Code 128"}
# PDF417 rows are three modules tall (the ratio pdf417gen and most scanners use).
PDF417_ROW_HEIGHT = 3
CSS_CLASS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class BarcodeMatrix:
    """A barcode as rows of modules (True = dark), each row ``row_height`` modules tall.

    ``problem`` is set, and ``rows`` empty, when the message cannot be encoded in this format;
    previews then draw a labelled placeholder instead of a code that would not scan.
    """

    format: str
    rows: tuple[tuple[bool, ...], ...]
    row_height: int = 1
    problem: str | None = None

    @property
    def width(self) -> int:
        """Width in modules."""
        return len(self.rows[0]) if self.rows else 0

    @property
    def height(self) -> int:
        """Height in modules, rows' height included."""
        return len(self.rows) * self.row_height

    def display_size(self) -> tuple[float, float]:
        """Width and height in points at which Apple Wallet shows this code."""
        width = DISPLAY_WIDTH[self.format]
        if self.format == "code128" or not self.rows:
            return width, CODE128_HEIGHT if self.format == "code128" else width * 0.4
        return width, width * self.height / self.width


def _latin1_or_utf8(message: str) -> str:
    # Apple encodes barcode messages as iso-8859-1 when they fit; anything else needs UTF-8.
    try:
        message.encode("iso-8859-1")
    except UnicodeEncodeError:
        return "utf-8"
    return "iso-8859-1"


def _rows(grid: Iterable[Iterable[int]]) -> tuple[tuple[bool, ...], ...]:
    return tuple(tuple(bool(cell) for cell in row) for row in grid)


def _off_shape(matrix: BarcodeMatrix) -> float:
    """How far the code's shown width:height is from 3:1, on a log scale (1.5:1 as far as 6:1)."""
    return abs(math.log(matrix.width / matrix.height / 3))


def _pdf417(message: str) -> BarcodeMatrix:
    """The PDF417 code of ``message`` with the column count that makes it nearest 3:1, as Wallet shows it."""
    best: BarcodeMatrix | None = None
    for columns in range(1, 31):
        try:
            codes = pdf417gen.encode(
                message, columns=columns, security_level=2, encoding=_latin1_or_utf8(message)
            )
        except ValueError:  # too many rows for so few columns
            continue
        bits = ("".join(format(word, "b") for word in row) for row in codes)
        matrix = BarcodeMatrix(
            "pdf417", tuple(tuple(bit == "1" for bit in row) for row in bits), PDF417_ROW_HEIGHT
        )
        if best is None or _off_shape(matrix) < _off_shape(best):
            best = matrix
    if best is None:
        raise ValueError("the message is too long")
    return best


def barcode_matrix(barcode: PassBarcode) -> BarcodeMatrix:
    """The modules of ``barcode``'s message in its format, or a matrix with a ``problem``."""
    message = barcode.message
    try:
        if barcode.format == "qr":
            # make_qr: never a Micro QR, which Wallet does not produce.
            qr = segno.make_qr(message, error="m", encoding=_latin1_or_utf8(message))
            return BarcodeMatrix("qr", _rows(qr.matrix))
        if barcode.format == "aztec":
            encoding = None if _latin1_or_utf8(message) == "iso-8859-1" else "utf-8"
            return BarcodeMatrix(
                "aztec", _rows(aztec_code_generator.AztecCode(message, encoding=encoding).matrix)
            )
        if barcode.format == "pdf417":
            return _pdf417(message)
        bits = Code128(message).build()[0]
        return BarcodeMatrix("code128", (tuple(bit == "1" for bit in bits),))
    except Exception as exc:  # each library raises its own errors; a bad message must not break a preview
        problem = f"{FORMAT_NAMES[barcode.format]} cannot hold this message: {exc}"
        return BarcodeMatrix(barcode.format, (), problem=problem)


def _runs(row: tuple[bool, ...]) -> list[tuple[int, int]]:
    """(start, length) of each run of dark modules in a row."""
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for x, dark in enumerate((*row, False)):
        if dark and start is None:
            start = x
        elif not dark and start is not None:
            runs.append((start, x - start))
            start = None
    return runs


def barcode_svg(
    matrix: BarcodeMatrix,
    *,
    css_class: str = "apple-pass__code-svg",
    size: tuple[float, float] | None = None,
) -> str:
    """The code as an inline SVG element, one ``rect`` per run of dark modules, scaled by CSS.

    ``css_class`` names the element for the caller's styles (the Apple preview's by default);
    ``size`` is its shown width and height in CSS pixels (default: :meth:`BarcodeMatrix.display_size`).
    """
    # Code 128 is one row stretched to the display height; other codes keep square modules.
    height = CODE128_HEIGHT if matrix.format == "code128" else matrix.height
    row_height = height if matrix.format == "code128" else matrix.row_height
    rects = "".join(
        f'<rect x="{x}" y="{y * row_height}" width="{length}" height="{row_height}"/>'
        for y, row in enumerate(matrix.rows)
        for x, length in _runs(row)
    )
    shown_w, shown_h = size or matrix.display_size()
    # The class is written into markup unescaped: only a plain CSS class name may reach it.
    if not CSS_CLASS.match(css_class):
        raise ValueError(f"not a CSS class name: {css_class!r}")
    return (
        f'<svg class="{css_class}" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'width="{shown_w:.0f}" height="{shown_h:.0f}" viewBox="0 0 {matrix.width} {height}" '
        f'preserveAspectRatio="none" shape-rendering="crispEdges" '
        f'data-format="{matrix.format}" data-row-height="{row_height}">'
        f'<rect width="{matrix.width}" height="{height}" fill="#fff"/><g fill="#000">{rects}</g></svg>'
    )


def barcode_image(matrix: BarcodeMatrix, width: int, height: int) -> Image.Image:
    """The code drawn on white within ``width`` x ``height`` pixels, modules snapped to whole pixels."""
    # Whole-pixel modules keep the code sharp and scannable in the PNG snapshot.
    module = max(1, width // matrix.width)
    if matrix.format == "code128":
        drawn_w, drawn_h, row_px = matrix.width * module, height, height
    else:
        row_px = module * matrix.row_height
        drawn_w, drawn_h = matrix.width * module, len(matrix.rows) * row_px
    image = Image.new("RGB", (drawn_w, drawn_h), "white")
    draw = ImageDraw.Draw(image)
    for y, row in enumerate(matrix.rows):
        for x, length in _runs(row):
            draw.rectangle(
                (x * module, y * row_px, (x + length) * module - 1, (y + 1) * row_px - 1), fill="black"
            )
    if image.width > width:  # more modules than pixels (a very long Code 128): squeeze it into the box
        image = image.resize((width, image.height), Image.Resampling.NEAREST)
    return image
