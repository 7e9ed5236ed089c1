"""The preview of a Google Wallet pass: its card and details list as HTML, and its card as a PNG.

Both are read from the class and object the channel would publish (see
:mod:`~tessera_wallet_google.preview_model`), so the preview shows what Google will show. The HTML
is a fragment the core embeds in its pages: styles scoped under ``.google-pass``, images as data:
URIs, nothing fetched from elsewhere. The PNG is drawn with Pillow, for reports and e-mails.
"""

from __future__ import annotations

import base64
from datetime import datetime
from functools import cache

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from core.plugin_api import Preview, RenderedPass, barcode_svg
from tessera_wallet_google.preview_model import CardView, Picture, card_view, code_size, css_color
from tessera_wallet_google.preview_snapshot import draw_card

__all__ = ["preview", "preview_html", "preview_png"]


@cache
def _environment() -> Environment:
    # Autoescape everything, the CSS include too: pass texts come from tenants and profiles.
    return Environment(
        loader=PackageLoader("tessera_wallet_google", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )


def _data_uri(picture: Picture | None) -> str | None:
    if picture is None:
        return None
    return f"data:image/png;base64,{base64.b64encode(picture.png).decode('ascii')}"


def _html(view: CardView) -> str:
    barcode = None
    if view.barcode is not None:
        width, height = code_size(view.barcode)
        svg = barcode_svg(view.barcode, css_class="google-pass__code-svg", size=(width, height))
        barcode = {
            "format": view.barcode.format,
            # Built from module booleans and numbers only, so it is safe to insert unescaped.
            "svg": Markup(svg) if view.barcode.rows else None,
            "problem": view.barcode.problem,
            "width": round(width),
            "height": round(height),
        }
    images = {"logo": _data_uri(view.logo), "hero": _data_uri(view.hero)}
    colors = {"background": css_color(view.background), "foreground": css_color(view.foreground)}
    template = _environment().get_template("wallet_google/_preview.html")
    return template.render(p=view, images=images, colors=colors, barcode=barcode)


def preview_html(rendered: RenderedPass, language: str, *, now: datetime | None = None) -> str:
    """The card and details list as Google Wallet shows them, texts in ``language``, as an HTML fragment.

    ``now`` decides whether the pass shows as expired (default: the current time).
    """
    return _html(card_view(rendered, language, now))


def preview_png(rendered: RenderedPass, language: str, *, now: datetime | None = None) -> bytes:
    """The card as Google Wallet shows it, texts in ``language``, as a PNG 656 pixels wide (2x)."""
    return draw_card(card_view(rendered, language, now))


def preview(rendered: RenderedPass, language: str, *, now: datetime | None = None) -> Preview:
    """The pass in ``language``: card and details as HTML, and the card as a PNG snapshot."""
    view = card_view(rendered, language, now)  # one view, so the HTML and the PNG show the same moment
    return Preview(html=_html(view), png=draw_card(view))
