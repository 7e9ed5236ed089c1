"""What a pass preview shows, decided once for the HTML and the PNG: translated texts, colours,
the fields Wallet keeps in each area of each style, images, barcode and validity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from babel import Locale, UnknownLocaleError
from babel.dates import format_date

from core.plugin_api import BarcodeMatrix, PassField, RenderedPass, barcode_matrix

Rgb = tuple[int, int, int]

# What Wallet shows for a pass that sets no colours: black text on white, labels like the text.
DEFAULT_BACKGROUND: Rgb = (255, 255, 255)
DEFAULT_FOREGROUND: Rgb = (0, 0, 0)

# How many fields Wallet shows per area; it silently drops the rest (Apple's design guide).
MAX_HEADER = 3
MAX_PRIMARY = 1
MAX_ROW = 4

# Only these schemes become links: a template's link must not run script in the core's pages.
SAFE_SCHEMES = {"http", "https", "mailto", "tel"}
# Wallet's data detectors make web addresses and e-mail addresses on the back tappable.
DETECTED = re.compile(
    r"(?P<url>\bhttps?://[^\s<>\"']+[^\s<>\"'.,;:!?)])|(?P<mail>\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+)"
)
RGB_TEXT = re.compile(r"^\s*rgb\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)\s*$")
HEX_TEXT = re.compile(r"^\s*#([0-9a-fA-F]{6})\s*$")

# Wallet's own words (in the phone's language, not the pass's); English when a language is missing.
UI_STRINGS: dict[str, dict[str, str]] = {
    "en": {"voided": "Voided", "voided_notice": "This pass is no longer valid.", "expired": "Expired",
           "expired_notice": "This pass has expired.", "expires": "Expires"},
    "fr": {"voided": "Annulé", "voided_notice": "Ce pass n’est plus valide.", "expired": "Expiré",
           "expired_notice": "Ce pass a expiré.", "expires": "Expire le"},
    "de": {"voided": "Ungültig", "voided_notice": "Dieser Pass ist nicht mehr gültig.", "expired": "Abgelaufen",
           "expired_notice": "Dieser Pass ist abgelaufen.", "expires": "Läuft ab"},
    "es": {"voided": "Anulado", "voided_notice": "Este pase ya no es válido.", "expired": "Caducado",
           "expired_notice": "Este pase ha caducado.", "expires": "Caduca"},
    "it": {"voided": "Annullato", "voided_notice": "Questo pass non è più valido.", "expired": "Scaduto",
           "expired_notice": "Questo pass è scaduto.", "expires": "Scade"},
    "nl": {"voided": "Ongeldig", "voided_notice": "Deze pas is niet meer geldig.", "expired": "Verlopen",
           "expired_notice": "Deze pas is verlopen.", "expires": "Verloopt"},
    "pt": {"voided": "Anulado", "voided_notice": "Este passe já não é válido.", "expired": "Expirado",
           "expired_notice": "Este passe expirou.", "expires": "Expira"},
}  # fmt: skip


@dataclass(frozen=True)
class Segment:
    """A piece of a back-field value; ``href`` makes it a link."""

    text: str
    href: str | None = None


@dataclass(frozen=True)
class FieldView:
    """A field as shown: label and value translated, the value split into text and links."""

    key: str
    area: str
    label: str
    value: str
    segments: tuple[Segment, ...]

    @property
    def caption(self) -> str:
        """The label as Wallet prints it on the front: upper-cased."""
        return self.label.upper()


@dataclass(frozen=True)
class PassView:
    """Everything the front and the back of one pass show in one language."""

    style: str
    language: str
    organization: str
    description: str
    logo_text: str | None
    background: Rgb
    foreground: Rgb
    label_color: Rgb
    header: tuple[FieldView, ...]
    primary: tuple[FieldView, ...]
    rows: tuple[tuple[FieldView, ...], ...]  # secondary and auxiliary rows, as the style groups them
    back: tuple[FieldView, ...]
    images: dict[str, bytes]  # the @2x PNG (else the largest) per image kind present
    barcode: BarcodeMatrix | None
    alt_text: str | None
    voided: bool
    expired: bool
    expires: str | None  # the expiration date, formatted for ``language``
    words: dict[str, str]  # Wallet's own words in ``language``

    @property
    def strip(self) -> bytes | None:
        """The strip image, in the styles that show one (storeCard, coupon, eventTicket)."""
        return self.images.get("strip") if self.style != "generic" else None

    @property
    def thumbnail(self) -> bytes | None:
        """The thumbnail, in the styles that show one (generic, eventTicket without a strip)."""
        return (
            self.images.get("thumbnail")
            if self.style in ("generic", "eventTicket") and not self.strip
            else None
        )

    @property
    def strip_height(self) -> int:
        """Height in points of the strip on a 320-point-wide pass (Apple's 375-point sizes, scaled)."""
        if self.style == "eventTicket":
            return 84  # 375 x 98
        wide = self.barcode is not None and self.barcode.format in ("pdf417", "code128")
        return 105 if wide else 123  # 375 x 123 beside a wide barcode, 375 x 144 otherwise

    @property
    def notice(self) -> str | None:
        """Why the pass cannot be used, in Wallet's words, or None when it can."""
        if self.voided:
            return self.words["voided_notice"]
        if self.expired:
            return self.words["expired_notice"]
        return None


def parse_color(value: str | None, default: Rgb) -> Rgb:
    """A pass colour (``rgb(r, g, b)``, or ``#rrggbb``) as a tuple; ``default`` when unset or unreadable."""
    if not value:
        return default
    if match := RGB_TEXT.match(value):
        parts = tuple(min(int(part), 255) for part in match.groups())
        return parts[0], parts[1], parts[2]
    if match := HEX_TEXT.match(value):
        digits = match.group(1)
        return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
    return default


def css_color(rgb: Rgb) -> str:
    """A colour tuple as CSS; written from integers so no template text reaches a style attribute."""
    return f"rgb({rgb[0]}, {rgb[1]}, {rgb[2]})"


def safe_href(link: str | None) -> str | None:
    """``link`` if it is a web, mail or phone link, else None (``javascript:`` and the like)."""
    if not link:
        return None
    scheme = urlsplit(link.strip()).scheme.lower()
    return link.strip() if scheme in SAFE_SCHEMES else None


def link_segments(value: str, link: str | None) -> tuple[Segment, ...]:
    """``value`` as Wallet shows it on the back: all a link when the field has one, else with
    web and e-mail addresses detected."""
    if href := safe_href(link):
        return (Segment(value, href),)
    segments: list[Segment] = []
    position = 0
    for match in DETECTED.finditer(value):
        if match.start() > position:
            segments.append(Segment(value[position : match.start()]))
        text = match.group(0)
        segments.append(Segment(text, text if match.group("url") else f"mailto:{text}"))
        position = match.end()
    if position < len(value):
        segments.append(Segment(value[position:]))
    return tuple(segments)


def best_image(variants: dict[int, bytes] | None) -> bytes | None:
    """The @2x variant of an image (what a 2x preview needs), else the largest scale there is."""
    if not variants:
        return None
    return variants.get(2) or variants[max(variants)]


def _locale(language: str) -> Locale:
    try:
        return Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse("en")


def words_for(language: str) -> dict[str, str]:
    """Wallet's own words in ``language`` (or its base language), English when unknown."""
    base = language.replace("_", "-").split("-")[0].lower()
    return UI_STRINGS.get(language.lower(), UI_STRINGS.get(base, UI_STRINGS["en"]))


def translator(rendered: RenderedPass, language: str) -> dict[str, str]:
    """The default-language-to-``language`` table of the pass (empty for its own language)."""
    if language == rendered.language:
        return {}
    base = language.split("-")[0]
    return rendered.translations.get(language) or rendered.translations.get(base) or {}


def pass_view(rendered: RenderedPass, language: str, now: datetime | None = None) -> PassView:
    """The pass as Wallet would show it to a phone set to ``language``, at ``now`` (default: now)."""
    table = translator(rendered, language)

    def tr(text: str) -> str:
        return table.get(text, text)

    def view(field: PassField) -> FieldView:
        value = tr(field.value)
        return FieldView(field.key, field.area, tr(field.label), value, link_segments(value, field.link))

    def area(name: str) -> tuple[FieldView, ...]:
        return tuple(view(field) for field in rendered.fields if field.area == name)

    secondary, auxiliary = area("secondary"), area("auxiliary")
    # storeCard and coupon put secondary and auxiliary fields on one row; the others on two rows.
    if rendered.style in ("storeCard", "coupon"):
        rows = tuple(row for row in ((secondary + auxiliary)[:MAX_ROW],) if row)
    else:
        rows = tuple(row for row in (secondary[:MAX_ROW], auxiliary[:MAX_ROW]) if row)

    moment = now or datetime.now(UTC)
    expiration = rendered.expiration_date
    if expiration is not None and expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=UTC)  # a naive date is taken as UTC
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    foreground = parse_color(rendered.foreground_color, DEFAULT_FOREGROUND)
    images: dict[str, bytes] = {
        kind: image for kind, variants in rendered.images.items() if (image := best_image(variants))
    }
    barcode = rendered.barcode
    return PassView(
        style=rendered.style,
        language=language,
        organization=tr(rendered.organization_name),
        description=tr(rendered.description),
        logo_text=tr(rendered.logo_text) if rendered.logo_text else None,
        background=parse_color(rendered.background_color, DEFAULT_BACKGROUND),
        foreground=foreground,
        label_color=parse_color(rendered.label_color, foreground),
        header=area("header")[:MAX_HEADER],
        primary=area("primary")[:MAX_PRIMARY],
        rows=rows,
        back=area("back"),
        images=images,
        barcode=barcode_matrix(barcode) if barcode else None,
        alt_text=tr(barcode.alt_text) if barcode and barcode.alt_text else None,
        voided=rendered.voided,
        expired=expiration is not None and expiration <= moment,
        expires=format_date(expiration, format="medium", locale=_locale(language)) if expiration else None,
        words=words_for(language),
    )
