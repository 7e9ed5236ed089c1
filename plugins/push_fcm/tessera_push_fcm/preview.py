"""The notification as it would look on an Android and on an iOS lock screen, side by side (HTML)."""

from __future__ import annotations

from html import escape

from tessera_push_fcm.message import FcmTemplate

STYLE = (
    "<style>"
    ".fcm-preview{display:flex;gap:24px;flex-wrap:wrap;font-family:system-ui,sans-serif}"
    ".fcm-screen{width:300px;padding:16px;border-radius:24px;color:#fff}"
    ".fcm-android{background:#202124}.fcm-ios{background:linear-gradient(#3a4a6b,#1c2233)}"
    ".fcm-label{font-size:12px;opacity:.7;margin-bottom:8px}"
    ".fcm-card{border-radius:16px;padding:12px;color:#111}"
    ".fcm-android .fcm-card{background:#f1f3f4}.fcm-ios .fcm-card{background:rgba(245,245,245,.9)}"
    ".fcm-app{font-size:11px;color:#555;margin-bottom:4px}"
    ".fcm-title{font-weight:600;font-size:14px}.fcm-body{font-size:13px;margin-top:2px}"
    ".fcm-card img{max-width:100%;border-radius:8px;margin-top:8px}"
    "</style>"
)


def _card(kind: str, label: str, app_line: str, template: FcmTemplate) -> str:
    image = f'<img src="{escape(template.image_url)}" alt="">' if template.image_url else ""
    return (
        f'<div class="fcm-screen fcm-{kind}"><div class="fcm-label">{label}</div>'
        f'<div class="fcm-card"><div class="fcm-app">{app_line}</div>'
        f'<div class="fcm-title">{escape(template.title)}</div>'
        f'<div class="fcm-body">{escape(template.body)}</div>{image}</div></div>'
    )


def preview_html(template: FcmTemplate) -> str:
    """The HTML of the Android and iOS renderings of ``template`` (every text escaped)."""
    android = _card("android", "Android", "Your app · now", template)
    ios = _card("ios", "iPhone lock screen", "YOUR APP · now", template)
    return f'{STYLE}<div class="fcm-preview">{android}{ios}</div>'
