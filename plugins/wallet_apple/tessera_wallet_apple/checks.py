"""What Apple Wallet would refuse, crop or ignore in a rendered pass, said so a marketer can fix it.

Apple's own rules first (icon, image sizes, colours, limits, field keys, change messages), then
``pass.json`` against the community JSON Schema shipped in ``schema/`` (MIT, walletpass/json-schemas)
as an independent check of everything else.
"""

from __future__ import annotations

import ipaddress
import json
import re
import struct
from collections import Counter
from functools import cache
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from core.plugin_api import Problem, RenderedPass
from tessera_wallet_apple.certificates import SigningIdentity
from tessera_wallet_apple.package import LANGUAGE, number_value, pass_json

RGB = re.compile(r"^rgb\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)$")
MAX_LOCATIONS = 10
MAX_BEACONS = 10
MIN_TOKEN_LENGTH = 16
MAX_NFC_MESSAGE_BYTES = 64
MAX_PRIMARY_FIELDS = {"storeCard": 1, "coupon": 1, "eventTicket": 1, "generic": 1}
MAX_HEADER_FIELDS = 3
SCALES = (1, 2, 3)
# Largest image in points (pixels = points x scale), from Apple's pass design guide. Icon: 29 pt in
# the older guide, 38 pt in the newer one; the larger is allowed.
MAX_POINTS: dict[str, tuple[int, int]] = {"icon": (38, 38), "logo": (160, 50), "thumbnail": (90, 90)}
IMAGE_STYLES = {
    "strip": ("coupon", "storeCard", "eventTicket"),
    "thumbnail": ("generic", "eventTicket"),
}
SQUARE_BARCODES = ("qr", "aztec")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The schema's date pattern only accepts years whose last two digits hold no 0 (2030 fails) and
# offsets of :00 or :30; this is the W3C date-time it means.
W3C_DATE = r"^\d{4}-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d(:[0-5]\d(\.\d+)?)?(Z|[+-][0-2]\d:[0-5]\d)$"
PLACEHOLDER_IDS = ("pass.example.placeholder", "ABCDE12345")  # for checking before a certificate exists
SCHEMA_FIELDS = {  # pass.json keys named as the rendered pass names them, for messages
    "authenticationToken": "authentication_token",
    "backgroundColor": "background_color",
    "foregroundColor": "foreground_color",
    "labelColor": "label_color",
    "relevantDate": "relevant_date",
    "expirationDate": "expiration_date",
    "organizationName": "organization_name",
    "serialNumber": "serial",
    "webServiceURL": "web_service_url",
    "barcodes": "barcode",
    "barcode": "barcode",
    "nfc": "nfc_message",
}


def check_rgb(value: str) -> str:
    """Accept a CSS ``rgb(r, g, b)`` colour with each part 0-255, as pass.json requires."""
    match = RGB.match(value)
    if match is None or any(int(part) > 255 for part in match.groups()):
        raise ValueError(f"'{value}' is not a colour like rgb(255, 255, 255).")
    return value


def png_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG from its header, or None when the bytes are not a PNG."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def max_points(kind: str, rendered: RenderedPass) -> tuple[int, int] | None:
    """Apple's largest size in points for this image on this pass (None: no limit known)."""
    if kind != "strip":
        return MAX_POINTS.get(kind)
    if rendered.style == "eventTicket":
        return 375, 98
    square = rendered.barcode is None or rendered.barcode.format in SQUARE_BARCODES
    return (375, 144) if square else (375, 123)  # a wide barcode leaves the strip less room


def image_problems(rendered: RenderedPass) -> list[Problem]:
    """Missing icon, images the style does not show, sizes beyond Apple's maxima, non-PNG files."""
    problems: list[Problem] = []
    icon = rendered.images.get("icon", {})
    if not icon:
        problems.append(Problem("images.icon", "Apple Wallet needs an icon: add one to the pass design."))
    elif 1 not in icon:
        problems.append(Problem("images.icon", "The icon lacks its standard size (icon.png, 1x)."))
    for kind, by_scale in rendered.images.items():
        styles = IMAGE_STYLES.get(kind)
        if styles and rendered.style not in styles:
            problems.append(
                Problem(
                    f"images.{kind}",
                    f"{rendered.style} passes show no {kind} image: remove it or choose a style that "
                    f"shows one ({', '.join(styles)}).",
                )
            )
            continue
        limit = max_points(kind, rendered)
        for scale, data in sorted(by_scale.items()):
            name = f"images.{kind}" + ("" if scale == 1 else f"@{scale}x")
            problems += _one_image(name, kind, scale, data, limit)
    return problems


def _one_image(name: str, kind: str, scale: int, data: bytes, limit: tuple[int, int] | None) -> list[Problem]:
    if scale not in SCALES:
        return [Problem(name, f"Images come at scales 1, 2 and 3, not {scale}.")]
    size = png_size(data)
    if size is None:
        return [Problem(name, f"The {kind} image is not a PNG: Apple Wallet only shows PNG images.")]
    width, height = size
    problems = []
    if limit is not None and (width > limit[0] * scale or height > limit[1] * scale):
        most = f"{limit[0] * scale}x{limit[1] * scale}"
        problems.append(
            Problem(
                name,
                f"The {kind} image is {width}x{height} pixels; at {scale}x Apple Wallet shows at most {most} "
                "and crops the rest.",
            )
        )
    if kind == "thumbnail" and not (2 / 3 <= width / max(height, 1) <= 3 / 2):
        problems.append(
            Problem(name, "The thumbnail must be between 2:3 (portrait) and 3:2 (landscape) in shape.")
        )
    return problems


def field_problems(rendered: RenderedPass) -> list[Problem]:
    """Duplicate keys, change messages without %@, numbers that are not numbers, too many fields."""
    problems: list[Problem] = []
    counts = Counter(field.key for field in rendered.fields)
    for key, count in counts.items():
        if count > 1:
            problems.append(
                Problem(f"fields.{key}", f"{count} fields have the key '{key}': each needs its own key.")
            )
    for field in rendered.fields:
        where = f"fields.{field.key}"
        if field.change_message is not None and "%@" not in field.change_message:
            problems.append(
                Problem(
                    f"{where}.change_message",
                    f"The change message '{field.change_message}' must contain %@ where the new value goes, "
                    "like 'You now have %@ points'.",
                )
            )
        if field.numeric and number_value(field.value) is None:
            problems.append(Problem(where, f"'{field.value}' is not a number, but the field is numeric."))
    primary = sum(1 for field in rendered.fields if field.area == "primary")
    most = MAX_PRIMARY_FIELDS[rendered.style]
    if primary > most:
        problems.append(
            Problem("fields", f"{rendered.style} passes show {most} primary field; this pass has {primary}.")
        )
    headers = sum(1 for field in rendered.fields if field.area == "header")
    if headers > MAX_HEADER_FIELDS:
        problems.append(
            Problem(
                "fields",
                f"Apple Wallet shows at most {MAX_HEADER_FIELDS} header fields; this pass has {headers}.",
            )
        )
    return problems


def pass_problems(rendered: RenderedPass) -> list[Problem]:
    """Colours, limits on locations and beacons, token, barcode, NFC and language codes."""
    problems: list[Problem] = []
    for name in ("foreground_color", "background_color", "label_color"):
        value = getattr(rendered, name)
        if value is not None:
            try:
                check_rgb(value)
            except ValueError as exc:
                problems.append(Problem(name, str(exc)))
    for name, items, most in (
        ("locations", rendered.locations, MAX_LOCATIONS),
        ("beacons", rendered.beacons, MAX_BEACONS),
    ):
        if len(items) > most:
            problems.append(
                Problem(name, f"Apple Wallet uses at most {most} {name} per pass; this one has {len(items)}.")
            )
    if rendered.web_service_url and len(rendered.authentication_token) < MIN_TOKEN_LENGTH:
        problems.append(
            Problem(
                "authentication_token", f"The pass's token must be at least {MIN_TOKEN_LENGTH} characters."
            )
        )
    if rendered.barcode is not None and not rendered.barcode.message:
        problems.append(
            Problem("barcode", "The barcode has nothing to encode: this profile lacks its value.")
        )
    if bool(rendered.nfc_message) != bool(rendered.nfc_public_key):
        problems.append(Problem("nfc_message", "NFC needs both a message and an encryption public key."))
    if rendered.nfc_message and len(rendered.nfc_message.encode()) > MAX_NFC_MESSAGE_BYTES:
        problems.append(Problem("nfc_message", f"The NFC message must fit in {MAX_NFC_MESSAGE_BYTES} bytes."))
    for language in (rendered.language, *rendered.translations):
        if not LANGUAGE.match(language):
            problems.append(
                Problem("translations", f"'{language}' is not a language code Wallet understands (like en).")
            )
    return problems


@cache
def pass_validator() -> Draft202012Validator:
    """The community pass.json schema, loaded once, with its known bugs patched."""
    text = files("tessera_wallet_apple").joinpath("schema/pass.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    # It declares draft-04 but needs 2020-12 semantics (const; required beside $ref); its draft-04
    # "dependencies" are schemas, which 2020-12 calls "dependentSchemas".
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["dependentSchemas"] = schema.pop("dependencies", {})
    schema["definitions"]["w3cDate"]["pattern"] = W3C_DATE
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_problems(data: dict[str, Any]) -> list[Problem]:
    """Every place where this pass.json breaks the schema."""
    errors = sorted(pass_validator().iter_errors(data), key=lambda error: list(error.absolute_path))
    return [Problem(_schema_field(error, data), f"Apple's pass format: {error.message}") for error in errors]


def _schema_field(error: ValidationError, data: dict[str, Any]) -> str:
    path = list(error.absolute_path)
    if not path:
        return "pass"
    if path[0] in MAX_PRIMARY_FIELDS and len(path) >= 3:  # style / areaFields / index
        try:
            return f"fields.{data[path[0]][path[1]][path[2]]['key']}"
        except (KeyError, IndexError, TypeError):
            return "fields"
    return SCHEMA_FIELDS.get(str(path[0]), str(path[0]))


def apple_problems(rendered: RenderedPass, identity: SigningIdentity | None) -> list[Problem]:
    """Everything Apple Wallet would refuse, crop or ignore in this pass; empty when it can go.

    ``identity`` supplies the pass type and team identifiers; without one (no certificate uploaded
    yet) placeholders stand in, so the rest can still be checked.
    """
    problems = [*image_problems(rendered), *field_problems(rendered), *pass_problems(rendered)]
    ids = (identity.pass_type_identifier, identity.team_identifier) if identity else PLACEHOLDER_IDS
    data = pass_json(rendered, *ids)
    url = data.get("webServiceURL")
    if isinstance(url, str) and url.startswith("http://"):
        if _on_loopback(url):
            # Development: an iPhone with "Allow HTTP Services" (Developer settings) talks to it.
            data["webServiceURL"] = "https://" + url.removeprefix("http://")
        else:
            problems.append(Problem("web_service_url", f"Apple Wallet only calls an HTTPS web service, not {url}: "
                                    "serve Tessera over HTTPS and set TESSERA_PUBLIC_URL to that address."))  # fmt: skip
    covered = {problem.field for problem in problems}
    for problem in schema_problems(data):
        if problem.field not in covered:  # said already, in plainer words
            problems.append(problem)
    return problems


def _on_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
