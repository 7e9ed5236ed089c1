"""One CSV row → one event row of the ``event`` table, or the reasons it cannot be imported.

Profiles rows become ``identify`` events: ``userId`` / ``anonymousId`` from their columns, every
other identifier (email, phone, plugin types) and every trait in ``traits``, consent columns as the
``consent`` trait convention. Transactions rows become ``track`` "Order Completed" events with the
Segment e-commerce properties (``order_id``, ``total``, ``revenue``, ``currency``, ``products``, ...);
their email, phone and plugin identifiers go in ``context.traits``, where identity resolution finds
them without setting traits.

Message ids are deterministic, so importing a file again stores nothing new: ``order:<order_id>``
for a transaction, ``csv:<sha256 of the normalized event>`` for a profile row.

Unlike the HTTP API, a row needs no ``userId`` or ``anonymousId``: an email or phone alone is
enough to find its profile. Values are trimmed; an empty cell sets nothing. Trait values are kept
as text.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError, model_validator

from core.identity.identifiers import normalize_phone
from core.imports.mapping import IGNORE, Target
from core.imports.models import ImportKind
from core.ingest.models import MESSAGE_ID_LENGTH
from core.ingest.schemas import Identify, InvalidEvent, Track, _reason, iso_timestamp
from core.ingest.service import _encode, to_row
from core.plugin_api import IdentifierType

ORDER_COMPLETED = "Order Completed"
ORDER_PREFIX = "order:"
PROFILE_PREFIX = "csv:"
MAX_ORDER_ID = MESSAGE_ID_LENGTH - len(ORDER_PREFIX)
SOURCE = "csv"
TRUE = frozenset({"true", "yes", "y", "1", "t", "on", "granted"})
FALSE = frozenset({"false", "no", "n", "0", "f", "off", "denied"})
_UNIX_TIME = re.compile(r"\d{9,13}(?:\.\d+)?")
_DOT_DECIMAL = re.compile(r"[+-]?(?:\d+|\d{1,3}(?:,\d{3})+)(?:\.\d+)?")
_COMMA_DECIMAL = re.compile(r"[+-]?(?:\d+|\d{1,3}(?:[. ]\d{3})+),\d+")
_CURRENCY = re.compile(r"[A-Za-z]{3}")
_SKU_SEPARATORS = re.compile(r"[|,;]")


@dataclass(frozen=True)
class EventRow:
    """An event ready to store: its ``event`` table row and that row as JSON."""

    row: dict[str, Any]
    encoded: bytes


class _CsvIdentify(Identify):
    @model_validator(mode="after")
    def _someone(self) -> _CsvIdentify:
        return self  # an email or phone trait alone finds the profile; the converter checks it


class _CsvTrack(Track):
    @model_validator(mode="after")
    def _someone(self) -> _CsvTrack:
        return self  # identifiers may all be in context.traits; the converter checks it


def parse_timestamp(text: str) -> datetime:
    """ISO 8601 (no offset: UTC), or Unix time in seconds or milliseconds; ValueError otherwise."""
    if _UNIX_TIME.fullmatch(text):
        seconds = float(text)
        if seconds > 1e11:  # 13 digits: milliseconds
            seconds /= 1000
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"{text!r} is out of range") from None
    parsed = iso_timestamp(text)
    assert parsed is not None
    return parsed


def parse_amount(text: str) -> int | float:
    """A decimal amount ("19.99", "1,234.50", "19,99", "1.234,50") as a JSON number."""
    value = text.strip().strip("$€£¥").strip()
    if _DOT_DECIMAL.fullmatch(value):
        value = value.replace(",", "")
    elif _COMMA_DECIMAL.fullmatch(value):
        value = value.replace(".", "").replace(" ", "").replace(",", ".")
    else:
        raise ValueError(f"{text!r} is not a number")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if number == number.to_integral_value() and abs(number) < 2**53:
        return int(number)
    return float(number)


def parse_boolean(text: str) -> bool:
    """yes/no, true/false, 1/0, y/n, on/off, granted/denied; ValueError otherwise."""
    word = text.strip().lower()
    if word in TRUE:
        return True
    if word in FALSE:
        return False
    raise ValueError(f"{text!r} is not yes/no, true/false or 1/0")


def parse_products(text: str) -> list[Any]:
    """A JSON array of product objects (a single object is taken as a one-product array)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc.args[0] if exc.args else exc})") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError("must be a JSON array of product objects")
    return value


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class RowConverter:
    """Turns the rows of one file into event rows, for one mapping and one tenant."""

    def __init__(
        self,
        kind: str,
        headers: Sequence[str],
        targets: Mapping[str, Target],
        types: Mapping[str, IdentifierType],
        default_region: str,
        *,
        received_at: datetime,
        context: dict[str, Any] | None = None,
    ) -> None:
        self.kind = ImportKind(kind)
        self.columns = [(i, h, targets[h]) for i, h in enumerate(headers) if targets[h].role != IGNORE]
        self.types = types
        self.default_region = default_region
        self.received_at = received_at
        self.context = context or {}
        self.identifier_columns = [h for _, h, t in self.columns if t.role == "identifier"]
        self.seen_orders: dict[str, int] = {}

    def _identifier(self, type_key: str, value: str) -> str:
        if type_key == "phone":
            return normalize_phone(value, self.default_region)
        return self.types[type_key].normalize(value)

    def convert(self, line: int, fields: Sequence[str]) -> tuple[EventRow | None, list[str]]:
        """``(event row, [])`` or ``(None, reasons)``: a row is imported whole or not at all."""
        problems: list[str] = []
        identifiers: dict[str, str] = {}
        values: dict[str, Any] = {}
        timestamp: datetime | None = None
        for index, header, target in self.columns:
            raw = fields[index].strip()
            if not raw:
                continue
            column = f"column {header!r}"
            try:
                if target.role == "identifier":
                    identifiers[target.name] = self._identifier(target.name, raw)
                elif target.role == "timestamp":
                    timestamp = parse_timestamp(raw)
                elif target.role == "amount":
                    values[target.name] = parse_amount(raw)
                elif target.role == "consent":
                    consent = values.setdefault("consent", {})
                    consent.setdefault(target.name, {})[target.purpose] = parse_boolean(raw)
                elif target.role == "products":
                    values.setdefault("products", []).extend(parse_products(raw))
                elif target.role == "sku":
                    skus = [s.strip() for s in _SKU_SEPARATORS.split(raw) if s.strip()]
                    values.setdefault("products", []).extend({"sku": sku} for sku in skus)
                elif target.role == "currency":
                    if not _CURRENCY.fullmatch(raw):
                        raise ValueError(f"{raw!r} is not a 3-letter ISO 4217 code such as EUR")
                    values["currency"] = raw.upper()
                elif target.role == "order_id":
                    if len(raw) > MAX_ORDER_ID:
                        raise ValueError(f"is longer than {MAX_ORDER_ID} characters")
                    values["order_id"] = raw
                else:  # trait, property
                    values.setdefault(target.role, {})[target.name] = raw
            except ValueError as exc:
                what = {
                    "identifier": f"invalid {target.name.replace('_', ' ')}",
                    "timestamp": "bad timestamp",
                    "amount": "bad number",
                    "consent": "bad consent value",
                    "products": "bad products",
                    "currency": "bad currency",
                    "order_id": "bad order_id",
                }.get(target.role, "bad value")
                problems.append(f"{what} in {column}: {exc}")
        if not identifiers and not any(p.startswith("invalid ") for p in problems):
            listed = ", ".join(repr(h) for h in self.identifier_columns)
            problems.append(f"missing identifier: the row has no value in {listed}")
        if self.kind == ImportKind.transactions:
            event = self._order(line, identifiers, values, problems)
        else:
            event = self._profile(identifiers, values)
        if problems:
            return None, problems
        if timestamp is not None:
            event["timestamp"] = timestamp.isoformat()
        if self.kind == ImportKind.profiles:
            event["messageId"] = PROFILE_PREFIX + _digest({"kind": self.kind.value, **event})
        event["context"] = {
            **self.context,
            **event.get("context", {}),
            "import": {**self.context.get("import", {}), "line": line},
        }
        model = _CsvTrack if self.kind == ImportKind.transactions else _CsvIdentify
        try:
            parsed = model.model_validate(event)
            row = to_row(parsed, received_at=self.received_at, source=SOURCE)
            encoded = _encode(row)
        except ValidationError as exc:
            return None, [_reason(exc)]
        except InvalidEvent as exc:
            return None, [exc.reason]
        if self.kind == ImportKind.transactions:
            self.seen_orders[event["properties"]["order_id"]] = line
        return EventRow(row, encoded), []

    @staticmethod
    def _ids(identifiers: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
        top = {"userId": identifiers.get("user_id"), "anonymousId": identifiers.get("anonymous_id")}
        rest = {k: v for k, v in identifiers.items() if k not in {"user_id", "anonymous_id"}}
        return {k: v for k, v in top.items() if v is not None}, rest

    def _profile(self, identifiers: dict[str, str], values: dict[str, Any]) -> dict[str, Any]:
        top, in_traits = self._ids(identifiers)
        traits: dict[str, Any] = {**values.get("trait", {}), **in_traits}
        if "consent" in values:
            traits["consent"] = {
                channel: purposes["marketing"] if set(purposes) == {"marketing"} else purposes
                for channel, purposes in values["consent"].items()
            }
        event: dict[str, Any] = {"type": "identify", **top, "traits": traits}
        return event

    def _order(
        self, line: int, identifiers: dict[str, str], values: dict[str, Any], problems: list[str]
    ) -> dict[str, Any]:
        order_id = values.get("order_id")
        if order_id is None and not any("order_id" in p for p in problems):
            problems.append("missing order_id")
        elif order_id is not None and order_id in self.seen_orders:
            problems.append(
                f"order_id {order_id!r} already appears on line {self.seen_orders[order_id]} "
                "(one row per order: list its products in a products or sku column)"
            )
        amounts = [
            t.name for _, _, t in self.columns if t.role == "amount" and t.name in {"total", "revenue"}
        ]
        if not {"total", "revenue"} & set(values) and not any(p.startswith("bad number") for p in problems):
            problems.append(f"missing amount: the row has no {' or '.join(amounts)}")
        top, in_context = self._ids(identifiers)
        properties: dict[str, Any] = {**values.get("property", {})}
        for key in ("order_id", "total", "revenue", "subtotal", "shipping", "tax", "discount", "currency",
                    "products"):  # fmt: skip
            if key in values:
                properties[key] = values[key]
        event: dict[str, Any] = {"type": "track", "event": ORDER_COMPLETED, **top, "properties": properties}
        if in_context:
            event["context"] = {"traits": in_context}
        if order_id is not None:
            event["messageId"] = ORDER_PREFIX + order_id
        return event
