"""A rendered pass as Apple's ``pass.json`` and as a signed ``.pkpass`` archive.

The archive holds, at its root: ``pass.json``, the images (``icon.png``, ``icon@2x.png``, ...), one
``<lang>.lproj/pass.strings`` per language, ``manifest.json`` (SHA-1 of the exact bytes of every
other file) and ``signature`` (detached CMS over ``manifest.json``). This runs once per pass issued
or updated, so it is written for throughput: PNGs are stored as they are (already compressed),
only the small text files are deflated.
"""

from __future__ import annotations

import codecs
import hashlib
import html
import json
import math
import re
import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from core.plugin_api import PassBeacon, PassField, PassLocation, RenderedPass
from tessera_wallet_apple.certificates import SigningIdentity
from tessera_wallet_apple.signing import sign_manifest

MEDIA_TYPE = "application/vnd.apple.pkpass"
BARCODE_FORMATS = {
    "qr": "PKBarcodeFormatQR",
    "pdf417": "PKBarcodeFormatPDF417",
    "aztec": "PKBarcodeFormatAztec",
    "code128": "PKBarcodeFormatCode128",
}
AREA_KEYS = {
    "header": "headerFields",
    "primary": "primaryFields",
    "secondary": "secondaryFields",
    "auxiliary": "auxiliaryFields",
    "back": "backFields",
}
# A language folder name: "en", "fr-CA", "zh-Hans", "pt_BR". Nothing that could escape the archive root.
LANGUAGE = re.compile(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")
IMAGE_DIGESTS_KEPT = 64  # images whose SHA-1 and CRC-32 are remembered (a few templates' worth)
DEFAULT_STRINGS_COMMENT = "/* The default language: its texts are those of pass.json. */\n"
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_STRINGS_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def w3c_date(value: datetime) -> str:
    """An ISO-8601 date-time with its offset, to the second (a naive value is taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat(timespec="seconds")


def number_value(text: str) -> int | float | None:
    """The number a numeric field's text holds (``"1250"`` -> 1250, ``"12.5"`` -> 12.5), or None."""
    text = text.strip()
    if not _NUMBER.match(text):
        return None
    if text.lstrip("+-").isdigit():
        return int(text)
    number = float(text)
    return number if math.isfinite(number) else None


def field_json(field: PassField) -> dict[str, Any]:
    """One field dictionary of pass.json."""
    value: str | int | float = field.value
    if field.numeric:
        parsed = number_value(field.value)
        value = field.value if parsed is None else parsed
    data: dict[str, Any] = {"key": field.key, "value": value}
    if field.label:
        data["label"] = field.label
    if field.change_message is not None:
        data["changeMessage"] = field.change_message
    if field.link:
        # Wallet renders only <a href> in attributedValue; the value stays as plain text beside it.
        href, text = html.escape(field.link, quote=True), html.escape(field.value, quote=False)
        data["attributedValue"] = f"<a href='{href}'>{text}</a>"
    return data


def pass_json(rendered: RenderedPass, pass_type_identifier: str, team_identifier: str) -> dict[str, Any]:
    """The ``pass.json`` dictionary of a rendered pass, signed for this pass type and team."""
    data: dict[str, Any] = {
        "formatVersion": 1,
        "passTypeIdentifier": pass_type_identifier,
        "teamIdentifier": team_identifier,
        "serialNumber": rendered.serial,
        "organizationName": rendered.organization_name,
        "description": rendered.description,
    }
    if rendered.web_service_url:
        data["webServiceURL"] = rendered.web_service_url
        data["authenticationToken"] = rendered.authentication_token
    for key, value in (
        ("logoText", rendered.logo_text),
        ("foregroundColor", rendered.foreground_color),
        ("backgroundColor", rendered.background_color),
        ("labelColor", rendered.label_color),
    ):
        if value is not None:
            data[key] = value
    style: dict[str, list[dict[str, Any]]] = {name: [] for name in AREA_KEYS.values()}
    for field in rendered.fields:
        style[AREA_KEYS[field.area]].append(field_json(field))
    data[rendered.style] = style
    if rendered.barcode is not None:
        barcode: dict[str, str] = {
            "format": BARCODE_FORMATS[rendered.barcode.format],
            "message": rendered.barcode.message,
            "messageEncoding": "iso-8859-1",
        }
        if rendered.barcode.alt_text:
            barcode["altText"] = rendered.barcode.alt_text
        data["barcodes"] = [barcode]
        if rendered.barcode.format != "code128":  # iOS 8 and earlier read only `barcode`, without Code128
            data["barcode"] = barcode
    if rendered.nfc_message and rendered.nfc_public_key:
        data["nfc"] = {"message": rendered.nfc_message, "encryptionPublicKey": rendered.nfc_public_key}
    if rendered.relevant_date is not None:
        data["relevantDate"] = w3c_date(rendered.relevant_date)
    if rendered.expiration_date is not None:
        data["expirationDate"] = w3c_date(rendered.expiration_date)
    if rendered.locations:
        data["locations"] = [location_json(location) for location in rendered.locations]
    if rendered.beacons:
        data["beacons"] = [beacon_json(beacon) for beacon in rendered.beacons]
    if rendered.voided:
        data["voided"] = True
    return data


def location_json(location: PassLocation) -> dict[str, Any]:
    """One entry of ``locations``."""
    data = {"latitude": location.latitude, "longitude": location.longitude, "altitude": location.altitude}
    return _without_none({**data, "relevantText": location.relevant_text})


def beacon_json(beacon: PassBeacon) -> dict[str, Any]:
    """One entry of ``beacons``."""
    data = {"proximityUUID": beacon.proximity_uuid, "major": beacon.major, "minor": beacon.minor}
    return _without_none({**data, "relevantText": beacon.relevant_text})


def _without_none(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not None}


def image_name(kind: str, scale: int) -> str:
    """The archive name of an image: ``icon.png``, ``icon@2x.png``, ``icon@3x.png``."""
    return f"{kind}.png" if scale == 1 else f"{kind}@{scale}x.png"


def strings_file(translations: dict[str, str] | None) -> bytes:
    """A ``pass.strings`` file: UTF-16 with a byte-order mark, one ``"KEY" = "Translation";`` a line.

    None gives the file of the default language, which only holds a comment.
    """
    if translations is None:
        text = DEFAULT_STRINGS_COMMENT
    else:
        text = "".join(
            f'"{key.translate(_STRINGS_ESCAPES)}" = "{value.translate(_STRINGS_ESCAPES)}";\n'
            for key, value in translations.items()
        )
    return codecs.BOM_UTF16_LE + text.encode("utf-16-le")


def localisation_files(rendered: RenderedPass) -> Iterable[tuple[str, bytes]]:
    """``<lang>.lproj/pass.strings`` per translated language, and one for the default language.

    Wallet picks an arbitrary .lproj when none matches the device's language, so with translations
    present the default language gets its own folder: its speakers then see pass.json's texts.
    """
    if not rendered.translations:
        return
    languages = [rendered.language, *sorted(rendered.translations)]
    for language in dict.fromkeys(languages):  # ordered, each once
        if not LANGUAGE.match(language):
            raise ValueError(f"'{language}' is not a language code Wallet understands (like en or pt-BR).")
        strings = None if language == rendered.language else rendered.translations[language]
        yield f"{language}.lproj/pass.strings", strings_file(strings)


def pass_json_bytes(rendered: RenderedPass, identity: SigningIdentity) -> bytes:
    """The exact pass.json bytes that go into the archive (UTF-8, compact)."""
    data = pass_json(rendered, identity.pass_type_identifier, identity.team_identifier)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def build_pkpass(rendered: RenderedPass, identity: SigningIdentity) -> bytes:
    """The signed ``.pkpass`` archive of a rendered pass."""
    entries = [_Entry.deflated("pass.json", pass_json_bytes(rendered, identity))]
    # A template's pass.strings are the same for each of its passes: compressed and hashed once.
    entries += [_strings_entry(name, data) for name, data in localisation_files(rendered)]
    for kind, by_scale in rendered.images.items():
        for scale, png in sorted(by_scale.items()):
            entries.append(_Entry.stored(image_name(kind, scale), png, *_digests.of(png)))
    manifest = json.dumps(
        {entry.name: entry.sha1 for entry in entries}, separators=(",", ":"), sort_keys=True
    )
    manifest_bytes = manifest.encode()
    signature = sign_manifest(manifest_bytes, identity)
    entries.append(_Entry.deflated("manifest.json", manifest_bytes))
    entries.append(_Entry.stored("signature", signature, "", zlib.crc32(signature)))
    return _zip(entries, rendered.updated_at)


# --- the ZIP archive ----------------------------------------------------------------------------
# Written directly rather than with zipfile: a pass is ~15 files, and zipfile's per-file overhead plus
# a CRC of every image (the same across a template's passes) cost about as much as the signature.
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")
_VERSION = 20  # 2.0: deflate
_MADE_BY = (3 << 8) | _VERSION  # Unix, so the permissions below are read
_FILE_MODE = 0o100644 << 16  # a regular file, rw-r--r--


@dataclass(frozen=True)
class _Entry:
    name: str
    method: int  # 0 stored, 8 deflated
    data: bytes  # as written into the archive
    size: int  # uncompressed
    crc: int
    sha1: str  # of the uncompressed bytes, for manifest.json

    @classmethod
    def deflated(cls, name: str, data: bytes) -> _Entry:
        packed = zlib.compress(data, 6, wbits=-15)  # raw deflate, as ZIP stores it
        return cls(name, 8, packed, len(data), zlib.crc32(data), _sha1(data))

    @classmethod
    def stored(cls, name: str, data: bytes, sha1: str, crc: int) -> _Entry:
        return cls(name, 0, data, len(data), crc, sha1)


@lru_cache(maxsize=256)
def _strings_entry(name: str, data: bytes) -> _Entry:
    return _Entry.deflated(name, data)


def _sha1(data: bytes) -> str:
    # SHA-1 is what Wallet checks manifest.json with; the signature itself uses SHA-256.
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


class _DigestCache:
    """SHA-1 and CRC-32 of image bytes, remembered per bytes object.

    A template's images are the same objects for every pass of it; hashing them again per pass
    would cost as much as signing. Keyed by ``id`` and holding the object, so an id is never reused
    while its entry lives and no content is hashed to look it up.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[int, tuple[bytes, str, int]] = OrderedDict()
        self.lock = threading.Lock()

    def of(self, data: bytes) -> tuple[str, int]:
        """The SHA-1 (hex) and CRC-32 of ``data``."""
        key = id(data)
        with self.lock:
            found = self.items.get(key)
            if found is not None and found[0] is data:
                self.items.move_to_end(key)
                return found[1], found[2]
        sha1, crc = _sha1(data), zlib.crc32(data)
        with self.lock:
            self.items[key] = (data, sha1, crc)
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return sha1, crc


_digests = _DigestCache(IMAGE_DIGESTS_KEPT)


def _dos_time(moment: datetime) -> tuple[int, int]:
    """A ZIP (MS-DOS) time and date, UTC; ZIP cannot hold dates before 1980."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    if moment.year < 1980:
        return 0, (1 << 5) | 1
    time = (moment.hour << 11) | (moment.minute << 5) | (moment.second // 2)
    return time, ((moment.year - 1980) << 9) | (moment.month << 5) | moment.day


def _zip(entries: list[_Entry], moment: datetime) -> bytes:
    """A ZIP archive of these entries, in this order."""
    time, date = _dos_time(moment)
    parts: list[bytes] = []
    central: list[bytes] = []
    offset = 0
    for entry in entries:
        name = entry.name.encode("ascii")  # names are ASCII by construction (kinds, language codes)
        packed = len(entry.data)
        if max(offset, packed, entry.size) > 0xFFFFFFFF:
            raise ValueError("A pass cannot be larger than 4 GB.")
        fields = (entry.method, time, date, entry.crc, packed, entry.size, len(name))
        parts += [_LOCAL.pack(0x04034B50, _VERSION, 0, *fields, 0), name, entry.data]
        central += [_CENTRAL.pack(0x02014B50, _MADE_BY, _VERSION, 0, *fields, 0, 0, 0, 0, _FILE_MODE, offset)]
        central += [name]
        offset += _LOCAL.size + len(name) + packed
    directory = b"".join(central)
    end = _END.pack(0x06054B50, 0, 0, len(entries), len(entries), len(directory), offset, 0)
    return b"".join([*parts, directory, end])
