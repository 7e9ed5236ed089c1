"""What a Google Wallet pass preview shows, read from the class and object Google would receive.

The preview builds the pass with :func:`~tessera_wallet_google.objects.google_pass`, exactly as the
channel publishes it, then reads those bodies the way Google Wallet lays them out (its default
templates): the card title (logo, issuer, program), the card rows, the barcode, the hero image, and
the details list (messages, text modules, validity, links). Texts come from each LocalizedString in
the viewer's language, so a text Google cannot translate stays in the pass's language here too.
The HTML preview and the PNG snapshot both draw a :class:`CardView`.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from PIL import Image

from core.plugin_api import BarcodeMatrix, PassBarcode, RenderedPass, barcode_matrix
from tessera_wallet_google.objects import BARCODE_TYPES, GooglePass, Kind, google_pass

Rgb = tuple[int, int, int]

# The preview is never published: any issuer id and tenant make the same bodies.
PREVIEW_ISSUER = "0000000000000000000"
PREVIEW_TENANT = "preview"
# Google fetches images from the pass's addresses; the preview names each image with an address that
# never resolves (.invalid) and draws the bytes it already holds, so nothing is fetched.
IMAGE_ADDRESS = "https://images.tessera-preview.invalid/{kind}"
FORMAT_OF_TYPE = {google_type: fmt for fmt, google_type in BARCODE_TYPES.items()}

# Without a background colour Google uses the hero image's dominant colour, else the logo's; with
# neither, this neutral grey stands in.
DEFAULT_BACKGROUND: Rgb = (60, 64, 67)
# Google writes in white or near-black, whichever stands out more on the card's colour.
LIGHT_TEXT: Rgb = (255, 255, 255)
DARK_TEXT: Rgb = (32, 33, 36)
HEX_COLOUR = re.compile(r"^#([0-9a-fA-F]{6})$")

# Only these schemes become links: a template's link must not run script in the core's pages.
SAFE_SCHEMES = {"http", "https", "mailto", "tel"}

# Google Wallet's own words (in the phone's language, not the pass's); English when one is missing.
UI_STRINGS: dict[str, dict[str, str]] = {
    "en": {"inactive": "This pass is no longer valid", "expired": "This pass has expired",
           "valid_until": "Valid until", "account_name": "Member name", "account_id": "Member ID",
           "card_number": "Card number", "details": "Details"},
    "fr": {"inactive": "Cette carte n’est plus valide", "expired": "Cette carte a expiré",
           "valid_until": "Valable jusqu’au", "account_name": "Nom du membre", "account_id": "Numéro de membre",
           "card_number": "Numéro de carte", "details": "Détails"},
    "de": {"inactive": "Diese Karte ist nicht mehr gültig", "expired": "Diese Karte ist abgelaufen",
           "valid_until": "Gültig bis", "account_name": "Name des Mitglieds", "account_id": "Mitgliedsnummer",
           "card_number": "Kartennummer", "details": "Details"},
    "es": {"inactive": "Esta tarjeta ya no es válida", "expired": "Esta tarjeta ha caducado",
           "valid_until": "Válida hasta", "account_name": "Nombre del miembro", "account_id": "ID de miembro",
           "card_number": "Número de tarjeta", "details": "Detalles"},
    "it": {"inactive": "Questa tessera non è più valida", "expired": "Questa tessera è scaduta",
           "valid_until": "Valida fino al", "account_name": "Nome del membro", "account_id": "ID membro",
           "card_number": "Numero carta", "details": "Dettagli"},
    "nl": {"inactive": "Deze pas is niet meer geldig", "expired": "Deze pas is verlopen",
           "valid_until": "Geldig tot", "account_name": "Naam van lid", "account_id": "Lidnummer",
           "card_number": "Kaartnummer", "details": "Details"},
    "pt": {"inactive": "Este cartão já não é válido", "expired": "Este cartão expirou",
           "valid_until": "Válido até", "account_name": "Nome do membro", "account_id": "ID de membro",
           "card_number": "Número do cartão", "details": "Detalhes"},
}  # fmt: skip


@dataclass(frozen=True)
class CardField:
    """A label over a value in a row of the card."""

    key: str
    label: str
    value: str


@dataclass(frozen=True)
class Detail:
    """A module of the details list: a header over a body (a text module, a message)."""

    key: str
    header: str
    body: str


@dataclass(frozen=True)
class Link:
    """An entry of the links module; ``href`` is None when the address is not a safe link."""

    key: str
    text: str
    href: str | None


@dataclass(frozen=True)
class Picture:
    """An image of the pass (PNG bytes) and its description for screen readers."""

    png: bytes
    alt: str


@dataclass(frozen=True)
class CardView:
    """Everything the card and its details list show, in one language."""

    kind: Kind
    language: str
    state: str  # the object's state: ACTIVE, INACTIVE or EXPIRED
    background: Rgb
    foreground: Rgb
    logo: Picture | None
    title: str  # beside the logo: the issuer, the offer's provider, the merchant, a generic card's title
    subheader: str | None  # a generic pass's small line over its header
    heading: str | None  # the program name, the offer's title, the header, the gift card's balance
    rows: tuple[tuple[CardField, ...], ...]
    barcode: BarcodeMatrix | None
    barcode_text: str | None  # shown under the code
    hero: Picture | None
    messages: tuple[Detail, ...]
    texts: tuple[Detail, ...]
    links: tuple[Link, ...]
    valid_until: str | None  # the end of the validity, formatted for ``language``
    words: dict[str, str]  # Google Wallet's own words in ``language``

    @property
    def notice(self) -> str | None:
        """Why the pass cannot be used, in Google Wallet's words, or None while it is active."""
        if self.state == "INACTIVE":
            return self.words["inactive"]
        if self.state == "EXPIRED":
            return self.words["expired"]
        return None

    @property
    def has_details(self) -> bool:
        """Whether the details list below the card has anything to show."""
        return bool(self.messages or self.texts or self.links or self.valid_until)


# --- languages -------------------------------------------------------------------------------------
def _tag(language: str) -> str:
    return language.replace("_", "-").lower()


def _base(language: str) -> str:
    return _tag(language).split("-")[0]


def locale_of(language: str) -> Locale:
    """The babel locale of ``language`` (English when babel does not know it)."""
    try:
        return Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse("en")


def words_for(language: str) -> dict[str, str]:
    """Google Wallet's own words in ``language`` (or its base language), English when unknown."""
    return UI_STRINGS.get(_tag(language), UI_STRINGS.get(_base(language), UI_STRINGS["en"]))


def resolve(localized: dict[str, Any], language: str) -> str:
    """A LocalizedString's text in ``language``: its exact translation, else one of the same base
    language, else its default value (Google's order)."""
    default = localized.get("defaultValue") or {}
    if _tag(str(default.get("language", ""))) == _tag(language):
        return str(default.get("value", ""))
    translations = [t for t in localized.get("translatedValues", []) if t.get("value")]
    for translation in translations:
        if _tag(str(translation.get("language", ""))) == _tag(language):
            return str(translation["value"])
    for translation in translations:
        if _base(str(translation.get("language", ""))) == _base(language):
            return str(translation["value"])
    return str(default.get("value", ""))


def text(body: dict[str, Any], name: str, language: str) -> str:
    """The text ``body`` shows for ``name``: its ``localizedName`` in ``language`` when set, else ``name``."""
    localized = body.get("localized" + name[0].upper() + name[1:])
    if isinstance(localized, dict):
        return resolve(localized, language)
    value = body.get(name)
    if isinstance(value, dict):  # some fields are LocalizedStrings themselves (a generic pass's header)
        return resolve(value, language)
    return str(value) if value is not None else ""


# --- values ----------------------------------------------------------------------------------------
def parse_hex(colour: str | None) -> Rgb | None:
    """``#rrggbb`` as a tuple, or None."""
    if not colour or not (match := HEX_COLOUR.match(colour.strip())):
        return None
    digits = match.group(1)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def css_color(rgb: Rgb) -> str:
    """A colour tuple as CSS; written from integers so no template text reaches a style attribute."""
    return f"rgb({rgb[0]}, {rgb[1]}, {rgb[2]})"


def _luminance(rgb: Rgb) -> float:
    """WCAG relative luminance."""

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def text_colour(background: Rgb) -> Rgb:
    """White or near-black text, whichever contrasts more with ``background``."""
    lum = _luminance(background)
    on_light = (lum + 0.05) / (_luminance(DARK_TEXT) + 0.05)
    on_dark = (_luminance(LIGHT_TEXT) + 0.05) / (lum + 0.05)
    return DARK_TEXT if on_light > on_dark else LIGHT_TEXT


def dominant_colour(png: bytes | None) -> Rgb | None:
    """The most common colour of an image's opaque pixels, or None (no image, unreadable, transparent)."""
    if not png:
        return None
    try:
        image = Image.open(io.BytesIO(png)).convert("RGBA")
    except OSError:
        return None
    image.thumbnail((64, 64))
    data = image.tobytes()  # RGBA, 4 bytes a pixel
    opaque = b"".join(data[i : i + 3] for i in range(0, len(data), 4) if data[i + 3] >= 128)
    if not opaque:
        return None
    # A few palette colours group shades of one colour, as a dominant-colour pick does.
    quantized = Image.frombytes("RGB", (len(opaque) // 3, 1), opaque).quantize(colors=6)
    counts = quantized.histogram()
    index = max(range(len(counts)), key=counts.__getitem__)
    palette = quantized.getpalette() or []
    return palette[index * 3], palette[index * 3 + 1], palette[index * 3 + 2]


def best_image(variants: dict[int, bytes] | None) -> bytes | None:
    """The @2x variant of an image (what Google fetches), else the largest scale there is."""
    if not variants:
        return None
    return variants.get(2) or variants[max(variants)]


def safe_href(link: str | None) -> str | None:
    """``link`` if it is a web, mail or phone link, else None (``javascript:`` and the like)."""
    if not link:
        return None
    scheme = urlsplit(link.strip()).scheme.lower()
    return link.strip() if scheme in SAFE_SCHEMES else None


def _amount(text_value: Any) -> Decimal | None:
    try:
        return Decimal(str(text_value))
    except (InvalidOperation, ValueError):
        return None


def money(body: dict[str, Any], locale: Locale) -> str:
    """A Money (micros and a currency code) as the viewer's locale writes it."""
    micros = _amount(body.get("micros", "0"))
    if micros is None:
        return ""
    amount = micros / 1_000_000
    code = body.get("currencyCode")
    return format_currency(amount, code, locale=locale) if code else format_decimal(amount, locale=locale)


def points_balance(balance: dict[str, Any], locale: Locale) -> str:
    """A LoyaltyPointsBalance as Google prints it: numbers in the viewer's locale, text as written."""
    if "string" in balance:
        return str(balance["string"])
    if "int" in balance:
        return format_decimal(int(balance["int"]), locale=locale)
    if "double" in balance:
        return format_decimal(balance["double"], locale=locale)
    if isinstance(balance.get("money"), dict):
        return money(balance["money"], locale)
    return ""


def _date(body: dict[str, Any] | None, locale: Locale) -> str | None:
    """A DateTime (``{"date": ISO 8601}``) as a medium date in ``locale``, or None."""
    if not body or not body.get("date"):
        return None
    try:
        moment = datetime.fromisoformat(str(body["date"]))
    except ValueError:
        return None
    return format_date(moment, format="medium", locale=locale)


# --- from the bodies -------------------------------------------------------------------------------
def preview_bodies(rendered: RenderedPass, now: datetime) -> tuple[GooglePass, dict[str, bytes]]:
    """The class and object the channel would publish for ``rendered``, and the image bytes per address.

    Every image of the pass gets an address, as issuing gives it one, so the bodies refer to the
    same images Google would show even when the editor's unsaved design has no addresses yet.
    """
    images = {kind: png for kind, variants in rendered.images.items() if (png := best_image(variants))}
    addresses = {kind: IMAGE_ADDRESS.format(kind=kind) for kind in images}
    shown = rendered.model_copy(update={"image_urls": addresses})
    built = google_pass(shown, issuer_id=PREVIEW_ISSUER, tenant=PREVIEW_TENANT, callback_url=None, now=now)
    return built, {addresses[kind]: png for kind, png in images.items()}


def _picture(image: Any, images: dict[str, bytes], language: str) -> Picture | None:
    """An Image body as the bytes it points at; None when absent or not one of the pass's images."""
    if not isinstance(image, dict):
        return None
    png = images.get(str((image.get("sourceUri") or {}).get("uri", "")))
    if png is None:
        return None
    description = image.get("contentDescription")
    return Picture(png, resolve(description, language) if isinstance(description, dict) else "")


def _points(body: Any, key: str, language: str, locale: Locale) -> CardField | None:
    if not isinstance(body, dict) or not isinstance(body.get("balance"), dict):
        return None
    return CardField(key, text(body, "label", language), points_balance(body["balance"], locale))


def _barcode(body: Any) -> tuple[BarcodeMatrix | None, str | None]:
    """The object's barcode as modules, and the text Google prints under it."""
    if not isinstance(body, dict) or body.get("type") not in FORMAT_OF_TYPE:
        return None, None
    code = PassBarcode.model_validate(
        {"format": FORMAT_OF_TYPE[body["type"]], "message": str(body.get("value", ""))}
    )
    return barcode_matrix(code), body.get("alternateText") or None


def _modules(klass: dict[str, Any], obj: dict[str, Any], language: str) -> tuple[Detail, ...]:
    """Text modules of the object, then of the class, as Google lists them."""
    modules = [*obj.get("textModulesData", []), *klass.get("textModulesData", [])]
    return tuple(
        Detail(str(m.get("id", "")), text(m, "header", language), text(m, "body", language))
        for m in modules
        if text(m, "header", language) or text(m, "body", language)
    )


def _messages(klass: dict[str, Any], obj: dict[str, Any], language: str) -> tuple[Detail, ...]:
    messages = [*obj.get("messages", []), *klass.get("messages", [])]
    return tuple(
        Detail(str(m.get("id", "")), text(m, "header", language), text(m, "body", language)) for m in messages
    )


def _links(klass: dict[str, Any], obj: dict[str, Any], language: str) -> tuple[Link, ...]:
    uris = [
        *(obj.get("linksModuleData") or {}).get("uris", []),
        *(klass.get("linksModuleData") or {}).get("uris", []),
    ]
    return tuple(
        Link(str(u.get("id", "")), text(u, "description", language) or str(u.get("uri", "")), safe_href(u.get("uri")))
        for u in uris
    )  # fmt: skip


def card_view(rendered: RenderedPass, language: str, now: datetime | None = None) -> CardView:
    """The pass as Google Wallet shows it to a phone set to ``language``, at ``now`` (default: now)."""
    moment = now or datetime.now(UTC)
    built, images = preview_bodies(rendered, moment)
    klass, obj, kind = built.class_body, built.object_body, built.kind
    locale, words = locale_of(language), words_for(language)
    hero = _picture(obj.get("heroImage") or klass.get("heroImage"), images, language)
    subheader: str | None = None
    heading: str | None = None
    rows: list[tuple[CardField, ...]] = []
    if kind == "loyalty":
        logo = _picture(klass.get("programLogo"), images, language)
        title, heading = text(klass, "issuerName", language), text(klass, "programName", language)
        points = tuple(
            field
            for key in ("loyaltyPoints", "secondaryLoyaltyPoints")
            if (field := _points(obj.get(key), key, language, locale))
        )
        account = []
        if obj.get("accountName"):
            label = text(klass, "accountNameLabel", language) or words["account_name"]
            account.append(CardField("accountName", label, str(obj["accountName"])))
        if obj.get("accountId"):
            label = text(klass, "accountIdLabel", language) or words["account_id"]
            account.append(CardField("accountId", label, str(obj["accountId"])))
        rows = [row for row in (points, tuple(account)) if row]
    elif kind == "offer":
        logo = _picture(klass.get("titleImage"), images, language)
        title, heading = text(klass, "provider", language), text(klass, "title", language)
    elif kind == "giftCard":
        logo = _picture(klass.get("programLogo"), images, language)
        title = text(klass, "merchantName", language) or text(klass, "issuerName", language)
        heading = money(obj["balance"], locale) if isinstance(obj.get("balance"), dict) else None
        if obj.get("cardNumber"):
            label = text(klass, "cardNumberLabel", language) or words["card_number"]
            rows = [(CardField("cardNumber", label, str(obj["cardNumber"])),)]
    else:
        logo = _picture(obj.get("logo") or klass.get("logo"), images, language)
        title = text(obj, "cardTitle", language)
        subheader = text(obj, "subheader", language) or None
        heading = text(obj, "header", language)
    background = (
        parse_hex(obj.get("hexBackgroundColor"))
        or parse_hex(klass.get("hexBackgroundColor"))
        or dominant_colour(hero.png if hero else None)
        or dominant_colour(logo.png if logo else None)
        or DEFAULT_BACKGROUND
    )
    barcode, barcode_text = _barcode(obj.get("barcode"))
    return CardView(
        kind=kind,
        language=language,
        state=str(obj.get("state", "ACTIVE")),
        background=background,
        foreground=text_colour(background),
        logo=logo,
        title=title,
        subheader=subheader,
        heading=heading or None,
        rows=tuple(rows),
        barcode=barcode,
        barcode_text=barcode_text,
        hero=hero,
        messages=_messages(klass, obj, language),
        texts=_modules(klass, obj, language),
        links=_links(klass, obj, language),
        valid_until=_date((obj.get("validTimeInterval") or {}).get("end"), locale),
        words=words,
    )


def code_size(matrix: BarcodeMatrix) -> tuple[float, float]:
    """Width and height in points at which Google Wallet shows this code on a 328-point-wide card."""
    if matrix.format in ("qr", "aztec"):
        return (150, 150) if matrix.rows else (150, 60)
    if matrix.format == "code128" or not matrix.rows:
        return 250, 70
    return 250, 250 * matrix.height / matrix.width
