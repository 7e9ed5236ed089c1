"""A rendered pass as Google Wallet's class and object (walletobjects v1), and what Google would refuse.

One pass class per template (``<issuerId>.<tenant>.<templateKey>``) holds the branding; one object
per customer (id = the pass serial) holds the barcode, fields, messages and state. Every body built
here is valid against the official discovery schema (see :mod:`tessera_wallet_google.schema`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Literal, get_args

from core.passes.contract import AREAS
from core.passes.rendering import NOTICE_KEY
from core.plugin_api import PassField, Problem, RenderedPass

Kind = Literal["loyalty", "offer", "generic", "giftCard"]
KINDS: tuple[Kind, ...] = get_args(Kind)
KIND_OF_STYLE: dict[str, Kind] = {
    "storeCard": "loyalty",
    "coupon": "offer",
    "generic": "generic",
    "eventTicket": "generic",
}
# REST collections: /walletobjects/v1/<collection>[/<resourceId>].
COLLECTIONS: dict[Kind, tuple[str, str]] = {
    "loyalty": ("loyaltyClass", "loyaltyObject"),
    "offer": ("offerClass", "offerObject"),
    "generic": ("genericClass", "genericObject"),
    "giftCard": ("giftCardClass", "giftCardObject"),
}
# Discovery schema names of the class and the object.
SCHEMAS: dict[Kind, tuple[str, str]] = {
    "loyalty": ("LoyaltyClass", "LoyaltyObject"),
    "offer": ("OfferClass", "OfferObject"),
    "generic": ("GenericClass", "GenericObject"),
    "giftCard": ("GiftCardClass", "GiftCardObject"),
}
# Keys of a save JWT's payload (discovery schema Resources).
PAYLOAD_KEYS: dict[Kind, tuple[str, str]] = {
    "loyalty": ("loyaltyClasses", "loyaltyObjects"),
    "offer": ("offerClasses", "offerObjects"),
    "generic": ("genericClasses", "genericObjects"),
    "giftCard": ("giftCardClasses", "giftCardObjects"),
}
BARCODE_TYPES = {"qr": "QR_CODE", "pdf417": "PDF_417", "aztec": "AZTEC", "code128": "CODE_128"}
# Google shows at most 10 text modules and 10 links from the object; more than 10 locations are refused.
MAX_TEXT_MODULES = 10
MAX_LINKS = 10
MAX_LOCATIONS = 10
NOTICE_MESSAGE_ID = "notice"
INT32_MAX = 2**31 - 1
UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]")
OBJECT_ID = re.compile(r"^[0-9]+\.[A-Za-z0-9._-]+$")
HEX_COLOUR = re.compile(r"^#([0-9a-fA-F]{6})$")
SHORT_HEX_COLOUR = re.compile(r"^#([0-9a-fA-F]{3})$")
RGB_COLOUR = re.compile(r"^rgb\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)$")
NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class GooglePass:
    """One pass as Google Wallet takes it: the class (per template) and the object (per customer)."""

    kind: Kind
    class_id: str
    class_body: dict[str, Any]
    object_id: str
    object_body: dict[str, Any]


# --- small conversions -----------------------------------------------------------------------------
def kind_of(rendered: RenderedPass) -> Kind:
    """The Google pass kind: the template's Google setting if valid, else the one matching the style."""
    chosen = rendered.wallet_settings.get("kind")
    for kind in KINDS:
        if chosen == kind:
            return kind
    return KIND_OF_STYLE[rendered.style]


def _identifier(text: str) -> str:
    """``text`` with every character Google refuses in ids replaced by ``_``."""
    return UNSAFE_ID_CHARS.sub("_", text) or "_"


def class_id(issuer_id: str, tenant: str, template_key: str) -> str:
    """The id of a template's pass class, ``<issuerId>.<tenant>.<templateKey>``, in Google's id characters."""
    # "." separates: tenant slugs and template keys never contain one, so two templates never collide.
    return f"{issuer_id}.{_identifier(tenant)}.{_identifier(template_key or 'pass')}"


def hex_colour(colour: str | None) -> str | None:
    """``rgb(r, g, b)``, ``#rgb`` or ``#rrggbb`` as Google's ``#rrggbb``; None if absent or not a colour."""
    if not colour:
        return None
    text = colour.strip()
    if match := HEX_COLOUR.match(text):
        return f"#{match.group(1).lower()}"
    if match := SHORT_HEX_COLOUR.match(text):
        return "#" + "".join(c * 2 for c in match.group(1).lower())
    if (match := RGB_COLOUR.match(text)) and all(int(part) <= 255 for part in match.groups()):
        return "#" + "".join(f"{int(part):02x}" for part in match.groups())
    return None


def _language(code: str) -> str:
    """A language code as a BCP 47 tag (``pt_BR`` -> ``pt-BR``), which Google's TranslatedString wants."""
    return code.replace("_", "-")


def _iso(moment: datetime) -> str:
    """ISO 8601 with an offset (Google treats a time without one as local to each user)."""
    return _aware(moment).isoformat()


def _aware(moment: datetime) -> datetime:
    """``moment`` with a time zone; the core's naive times are UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _number(text: str) -> Decimal | None:
    """The number a numeric field's text holds (``"1250"``, ``"12.50"``), or None."""
    text = text.strip()
    if not NUMBER.match(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


# --- localized texts -------------------------------------------------------------------------------
def localized(rendered: RenderedPass, text: str) -> dict[str, Any]:
    """A LocalizedString: ``text`` in the pass's language plus every translation of it."""
    body: dict[str, Any] = {"defaultValue": {"language": _language(rendered.language), "value": text}}
    translated = [
        {"language": _language(language), "value": table[text]}
        for language, table in rendered.translations.items()
        if table.get(text)
    ]
    if translated:
        body["translatedValues"] = translated
    return body


def _translations(rendered: RenderedPass, text: str) -> dict[str, Any] | None:
    """The LocalizedString of ``text`` only when some language translates it (``localizedX`` fields)."""
    body = localized(rendered, text)
    return body if "translatedValues" in body else None


def _put(body: dict[str, Any], key: str, value: Any) -> None:
    """Set ``body[key]`` unless ``value`` is None or empty (Google drops empties; we do not send them)."""
    if value not in (None, "", [], {}):
        body[key] = value


def _image(rendered: RenderedPass, url: str | None, description: str) -> dict[str, Any] | None:
    """An Image that Google fetches from ``url``, described for screen readers."""
    if not url:
        return None
    return {"sourceUri": {"uri": url}, "contentDescription": localized(rendered, description)}


def _logo_url(rendered: RenderedPass) -> str | None:
    """The square logo Google shows: the template's logo, else its icon."""
    return rendered.image_urls.get("logo") or rendered.image_urls.get("icon")


# --- which field goes where ------------------------------------------------------------------------
@dataclass(frozen=True)
class _Layout:
    """The rendered fields sorted into Google's places for one kind."""

    points: tuple[PassField, ...]  # loyaltyPoints, secondaryLoyaltyPoints
    member: PassField | None  # loyalty account, gift card number
    balance: PassField | None  # gift card balance (needs a currency)
    title: PassField | None  # generic header/subheader
    texts: tuple[PassField, ...]  # textModulesData
    links: tuple[PassField, ...]  # linksModuleData
    notice: PassField | None  # messages


def _ordered(rendered: RenderedPass) -> list[PassField]:
    """The fields front to back (Google lists modules in order; Apple groups by area)."""
    return [field for area in AREAS for field in rendered.fields if field.area == area]


def _layout(rendered: RenderedPass, kind: Kind) -> _Layout:
    """Where each of the pass's fields goes on a Google pass of ``kind``."""
    points: list[PassField] = []
    member: PassField | None = None
    balance: PassField | None = None
    title: PassField | None = None
    texts: list[PassField] = []
    links: list[PassField] = []
    notice: PassField | None = None
    currency = rendered.wallet_settings.get("currency")
    for field in _ordered(rendered):
        if field.key == NOTICE_KEY:
            notice = field
        elif field.link:
            links.append(field)
        elif kind == "loyalty" and field.role == "points" and len(points) < 2:
            points.append(field)
        elif kind in ("loyalty", "giftCard") and field.role == "member" and member is None and field.value:
            member = field
        elif kind == "giftCard" and field.role == "points" and currency and balance is None:
            balance = field
        elif kind == "generic" and field.area == "primary" and title is None and field.value:
            title = field
        elif field.value:
            texts.append(field)
    return _Layout(tuple(points), member, balance, title, tuple(texts), tuple(links), notice)


# --- modules -----------------------------------------------------------------------------------
def _text_module(rendered: RenderedPass, field: PassField) -> dict[str, Any]:
    """A TextModuleData: the field's label as header, its value as body."""
    module: dict[str, Any] = {"id": "tier" if field.role == "tier" else _identifier(field.key)}
    _put(module, "header", field.label)
    module["body"] = field.value
    if field.label:
        _put(module, "localizedHeader", _translations(rendered, field.label))
    _put(module, "localizedBody", _translations(rendered, field.value))
    return module


def _link(rendered: RenderedPass, field: PassField) -> dict[str, Any]:
    """A Uri of the links module, titled by the field's label (or value)."""
    title = field.label or field.value
    uri: dict[str, Any] = {"uri": field.link, "id": _identifier(field.key)}
    _put(uri, "description", title)
    if title:
        _put(uri, "localizedDescription", _translations(rendered, title))
    return uri


def _loyalty_points(rendered: RenderedPass, field: PassField) -> dict[str, Any]:
    """A LoyaltyPoints: a whole number as ``int`` (Google formats it), anything else as text."""
    number = _number(field.value) if field.numeric else None
    whole = number is not None and number == number.to_integral_value() and abs(number) <= INT32_MAX
    balance: dict[str, Any] = (
        {"int": int(number)} if whole and number is not None else {"string": field.value}
    )
    points: dict[str, Any] = {"balance": balance}
    _put(points, "label", field.label)
    if field.label:
        _put(points, "localizedLabel", _translations(rendered, field.label))
    return points


def _money(field: PassField, currency: str) -> dict[str, Any] | None:
    """A Money in micros (int64 as a string), or None when the field holds no amount."""
    amount = _number(field.value)
    if amount is None:
        return None
    micros = (amount * 1_000_000).to_integral_value(rounding=ROUND_HALF_EVEN)
    return {"micros": str(int(micros)), "currencyCode": currency}


def message(notice: str, *, message_id: str, header: str, notify: bool) -> dict[str, Any]:
    """A Google Message: shown on the pass's back, and as a phone notification when ``notify``."""
    body: dict[str, Any] = {"id": message_id, "messageType": "TEXT_AND_NOTIFY" if notify else "TEXT"}
    _put(body, "header", header)
    body["body"] = notice
    return body


def _notice_message(rendered: RenderedPass, field: PassField) -> dict[str, Any]:
    """The newest notice as the object's message (the channel notifies separately, with addMessage)."""
    header = field.label or rendered.organization_name
    body = message(field.value, message_id=NOTICE_MESSAGE_ID, header=header, notify=False)
    _put(body, "localizedHeader", _translations(rendered, header))
    _put(body, "localizedBody", _translations(rendered, field.value))
    return body


def announcements(rendered: RenderedPass, announced_keys: list[str]) -> list[str]:
    """The lock-screen texts for fields whose value changed: each change message with ``%@`` as the value."""
    by_key = {field.key: field for field in rendered.fields}
    texts: list[str] = []
    for key in announced_keys:
        field = by_key.get(key)
        if field is not None and field.change_message:
            texts.append(field.change_message.replace("%@", field.value))
    return texts


def _state(rendered: RenderedPass, now: datetime) -> str:
    """ACTIVE, or INACTIVE once voided, or EXPIRED once past its expiration date."""
    if rendered.voided:
        return "INACTIVE"
    if rendered.expiration_date is not None and _aware(rendered.expiration_date) <= _aware(now):
        return "EXPIRED"
    return "ACTIVE"


# --- class and object ------------------------------------------------------------------------------
def _program_name(rendered: RenderedPass) -> str:
    """The program's name: the Google template's, else the logo text, else the pass description."""
    return rendered.wallet_settings.get("program_name") or rendered.logo_text or rendered.description


def _issuer_name(rendered: RenderedPass) -> str:
    """The issuer's name: the Google template's, else the pass's organization."""
    return rendered.wallet_settings.get("issuer_name") or rendered.organization_name


def _background(rendered: RenderedPass) -> str | None:
    """The card colour as ``#rrggbb``: the Google template's, else the pass's background."""
    return hex_colour(rendered.wallet_settings.get("hex_background_color")) or hex_colour(
        rendered.background_color
    )


def _class_body(
    rendered: RenderedPass, kind: Kind, identifier: str, callback_url: str | None
) -> dict[str, Any]:
    """The pass class: what every pass of the template shares (names, logo, colour, callback)."""
    body: dict[str, Any] = {"id": identifier}
    issuer = _issuer_name(rendered)
    logo = _image(rendered, _logo_url(rendered), issuer)
    hero = _image(rendered, rendered.image_urls.get("strip"), rendered.description)
    if kind != "generic":
        # Google reviews classes of these kinds; UNDER_REVIEW lets objects be saved right away.
        body["issuerName"] = issuer
        _put(body, "localizedIssuerName", _translations(rendered, issuer))
        body["reviewStatus"] = "UNDER_REVIEW"
        _put(body, "hexBackgroundColor", _background(rendered))
        _put(body, "heroImage", hero)
    if kind == "loyalty":
        program = _program_name(rendered)
        body["programName"] = program
        _put(body, "localizedProgramName", _translations(rendered, program))
        _put(body, "programLogo", logo)
    elif kind == "offer":
        body["title"] = rendered.description
        _put(body, "localizedTitle", _translations(rendered, rendered.description))
        body["provider"] = rendered.organization_name
        _put(body, "localizedProvider", _translations(rendered, rendered.organization_name))
        body["redemptionChannel"] = "BOTH"
        _put(body, "titleImage", logo)
    elif kind == "giftCard":
        body["merchantName"] = rendered.organization_name
        _put(body, "localizedMerchantName", _translations(rendered, rendered.organization_name))
        _put(body, "programLogo", logo)
    if callback_url:
        body["callbackOptions"] = {"url": callback_url}
    return body


def _object_body(
    rendered: RenderedPass, kind: Kind, identifier: str, owner_class: str, now: datetime
) -> dict[str, Any]:
    """The customer's object: barcode, fields as Google's modules, dates, places and state."""
    layout = _layout(rendered, kind)
    body: dict[str, Any] = {"id": identifier, "classId": owner_class, "state": _state(rendered, now)}
    if rendered.barcode is not None and rendered.barcode.format in BARCODE_TYPES:
        barcode: dict[str, Any] = {
            "type": BARCODE_TYPES[rendered.barcode.format],
            "value": rendered.barcode.message,
        }
        _put(barcode, "alternateText", rendered.barcode.alt_text)
        body["barcode"] = barcode
    if kind == "loyalty":
        if layout.member is not None:
            body["accountName"] = layout.member.value
            body["accountId"] = rendered.barcode.message if rendered.barcode else layout.member.value
        if layout.points:
            body["loyaltyPoints"] = _loyalty_points(rendered, layout.points[0])
        if len(layout.points) > 1:
            body["secondaryLoyaltyPoints"] = _loyalty_points(rendered, layout.points[1])
    elif kind == "giftCard":
        body["cardNumber"] = _card_number(rendered, layout) or rendered.serial
        currency = rendered.wallet_settings.get("currency", "")
        money = _money(layout.balance, currency) if layout.balance is not None else None
        if money is not None:
            body["balance"] = money
            body["balanceUpdateTime"] = {"date": _iso(rendered.updated_at)}
    elif kind == "generic":
        body["cardTitle"] = localized(rendered, rendered.organization_name)
        if layout.title is not None:
            body["header"] = localized(rendered, layout.title.value)
            if layout.title.label:
                body["subheader"] = localized(rendered, layout.title.label)
        else:
            body["header"] = localized(rendered, rendered.description)
        _put(body, "logo", _image(rendered, _logo_url(rendered), rendered.organization_name))
        _put(body, "heroImage", _image(rendered, rendered.image_urls.get("strip"), rendered.description))
        _put(body, "hexBackgroundColor", _background(rendered))
    _put(body, "textModulesData", [_text_module(rendered, field) for field in layout.texts])
    # The thumbnail (Apple shows it beside the fields) is Google's image module, below the card.
    thumbnail = _image(rendered, rendered.image_urls.get("thumbnail"), rendered.description)
    if thumbnail is not None:
        body["imageModulesData"] = [{"id": "thumbnail", "mainImage": thumbnail}]
    if layout.links:
        body["linksModuleData"] = {"uris": [_link(rendered, field) for field in layout.links]}
    if rendered.expiration_date is not None:
        # Only an end: Apple's relevant date says when to surface the pass, not when it starts to be valid.
        body["validTimeInterval"] = {"end": {"date": _iso(rendered.expiration_date)}}
    # merchantLocations, not the deprecated ``locations`` (which no longer triggers notifications).
    _put(
        body,
        "merchantLocations",
        [{"latitude": place.latitude, "longitude": place.longitude} for place in rendered.locations],
    )
    if layout.notice is not None and layout.notice.value:
        body["messages"] = [_notice_message(rendered, layout.notice)]
    return body


def _card_number(rendered: RenderedPass, layout: _Layout) -> str | None:
    """A gift card's number: its member field, else its barcode's message."""
    if layout.member is not None:
        return layout.member.value
    if rendered.barcode is not None and rendered.barcode.message:
        return rendered.barcode.message
    return None


def google_pass(
    rendered: RenderedPass, *, issuer_id: str, tenant: str, callback_url: str | None, now: datetime
) -> GooglePass:
    """The class and object Google Wallet should hold for this rendered pass at ``now``."""
    kind = kind_of(rendered)
    owner_class = class_id(issuer_id, tenant, rendered.template_key)
    return GooglePass(
        kind=kind,
        class_id=owner_class,
        class_body=_class_body(rendered, kind, owner_class, callback_url),
        object_id=rendered.serial,
        object_body=_object_body(rendered, kind, rendered.serial, owner_class, now),
    )


# --- what Google would refuse ----------------------------------------------------------------------
def google_problems(rendered: RenderedPass) -> list[Problem]:
    """What Google Wallet would refuse or not show for this pass, said so a marketer can fix it."""
    kind = kind_of(rendered)
    layout = _layout(rendered, kind)
    problems: list[Problem] = []
    if not OBJECT_ID.match(rendered.serial):
        problems.append(
            Problem(
                "serial",
                f"'{rendered.serial}' is not a Google Wallet pass id (<issuer id>.<letters, digits>).",
            )
        )
    if not rendered.organization_name.strip():
        problems.append(
            Problem(
                "organization_name", "Google Wallet shows the organization name on every pass: fill it in."
            )
        )
    if kind == "loyalty" and not _logo_url(rendered):
        problems.append(
            Problem("images.logo", "A Google Wallet loyalty card needs a logo: add a logo (or icon) image.")
        )
    if kind == "loyalty" and not _program_name(rendered).strip():
        problems.append(
            Problem("description", "Google Wallet needs the program's name: fill in the description.")
        )
    if kind == "offer" and not rendered.description.strip():
        problems.append(
            Problem("description", "Google Wallet needs the offer's title: fill in the description.")
        )
    if kind == "generic" and layout.title is None and not rendered.description.strip():
        problems.append(
            Problem(
                "description",
                "Google Wallet needs a title for this pass: add a primary field or a description.",
            )
        )
    if len(layout.texts) > MAX_TEXT_MODULES:
        keys = ", ".join(field.key for field in layout.texts)
        problems.append(
            Problem(
                "fields",
                f"Google Wallet shows at most {MAX_TEXT_MODULES} text fields on a pass; this one has "
                f"{len(layout.texts)} ({keys}). Remove {len(layout.texts) - MAX_TEXT_MODULES} or merge some.",
            )
        )
    if len(layout.links) > MAX_LINKS:
        problems.append(
            Problem(
                "fields",
                f"Google Wallet shows at most {MAX_LINKS} links on a pass; this one has {len(layout.links)}.",
            )
        )
    if len(rendered.locations) > MAX_LOCATIONS:
        problems.append(
            Problem(
                "locations",
                f"Google Wallet accepts at most {MAX_LOCATIONS} store locations per pass; this one has "
                f"{len(rendered.locations)}.",
            )
        )
    if rendered.barcode is not None:
        if rendered.barcode.format not in BARCODE_TYPES:
            problems.append(
                Problem("barcode", f"Google Wallet cannot show a '{rendered.barcode.format}' barcode.")
            )
        if not rendered.barcode.message:
            problems.append(
                Problem("barcode", "The barcode has nothing to encode: this profile lacks its value.")
            )
    if kind == "giftCard":
        problems += _gift_card_problems(rendered, layout)
    colour = rendered.background_color
    if colour and hex_colour(colour) is None:
        problems.append(
            Problem("background_color", f"'{colour}' is not a colour like rgb(255, 255, 255) or #ffffff.")
        )
    return problems


def _gift_card_problems(rendered: RenderedPass, layout: _Layout) -> list[Problem]:
    """A gift card needs its real card number, and a balance needs a number and a currency code."""
    problems: list[Problem] = []
    if _card_number(rendered, layout) is None:
        problems.append(
            Problem(
                "fields",
                "A Google Wallet gift card needs its card number: give a field the role 'member' "
                "(or add a barcode) holding the card number.",
            )
        )
    currency = rendered.wallet_settings.get("currency")
    if currency and not CURRENCY.match(currency):
        problems.append(
            Problem("wallet_settings.currency", f"'{currency}' is not a currency code like EUR or USD.")
        )
    if layout.balance is not None and _number(layout.balance.value) is None:
        problems.append(
            Problem(
                f"field.{layout.balance.key}.value",
                f"The gift card balance '{layout.balance.value}' is not an amount like 25.50.",
            )
        )
    return problems
