"""The preview of an Apple Wallet pass: its front and back as HTML, and its front as a PNG.

The HTML is a fragment the core embeds in its pages (the template editor shows it live beside the
form): styles scoped under ``.apple-pass``, images as data: URIs, nothing fetched from elsewhere.
The PNG is drawn with Pillow, for reports and e-mails.
"""

from __future__ import annotations

import base64
from datetime import datetime
from functools import cache

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from core.plugin_api import Preview, RenderedPass, barcode_svg
from tessera_wallet_apple.preview_model import css_color, pass_view
from tessera_wallet_apple.preview_snapshot import draw_front

__all__ = ["preview", "preview_html", "preview_png"]


@cache
def _environment() -> Environment:
    # Autoescape everything, the CSS include too: pass texts come from tenants and profiles.
    return Environment(
        loader=PackageLoader("tessera_wallet_apple", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )


def _data_uri(png: bytes | None) -> str | None:
    return f"data:image/png;base64,{base64.b64encode(png).decode('ascii')}" if png else None


def preview_html(rendered: RenderedPass, language: str, *, now: datetime | None = None) -> str:
    """The pass front and back as Apple Wallet shows them, texts in ``language``, as an HTML fragment.

    ``now`` decides whether the pass shows as expired (default: the current time).
    """
    view = pass_view(rendered, language, now)
    barcode = None
    if view.barcode is not None:
        width, height = view.barcode.display_size()
        barcode = {
            "format": view.barcode.format,
            # Built from module booleans and numbers only, so it is safe to insert unescaped.
            "svg": Markup(barcode_svg(view.barcode)) if view.barcode.rows else None,
            "problem": view.barcode.problem,
            "width": round(width),
            "height": round(height),
        }
    images = {
        "logo": _data_uri(view.images.get("logo")),
        "icon": _data_uri(view.images.get("icon")),
        "strip": _data_uri(view.strip),
        "thumbnail": _data_uri(view.thumbnail),
    }
    colors = {
        "background": css_color(view.background),
        "foreground": css_color(view.foreground),
        "label": css_color(view.label_color),
    }
    template = _environment().get_template("wallet_apple/_preview.html")
    return template.render(p=view, images=images, colors=colors, barcode=barcode)


def preview_png(rendered: RenderedPass, language: str, *, now: datetime | None = None) -> bytes:
    """The pass front as Wallet shows it, texts in ``language``, as a PNG 640 pixels wide (2x)."""
    return draw_front(pass_view(rendered, language, now))


def preview(rendered: RenderedPass, language: str, *, now: datetime | None = None) -> Preview:
    """The pass in ``language``: front and back as HTML, and the front as a PNG snapshot."""
    return Preview(
        html=preview_html(rendered, language, now=now), png=preview_png(rendered, language, now=now)
    )
