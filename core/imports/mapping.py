"""Which field each CSV column feeds, written as a short text (a "field spec").

Field specs, for both kinds of import:

- an identifier type: ``user_id``, ``email``, ``phone``, ``anonymous_id``, or one a plugin the tenant
  enabled registered (``fcm_token``, ...)
- ``timestamp``: when the row happened (ISO 8601, or Unix seconds/milliseconds)
- ``ignore``: the column is not imported

Profiles only: ``trait:NAME`` (a trait), ``consent:CHANNEL`` or ``consent:CHANNEL:PURPOSE`` (a consent
statement; the purpose defaults to ``marketing``).

Transactions only: ``order_id``, ``total``, ``revenue``, ``subtotal``, ``shipping``, ``tax``,
``discount`` (decimal amounts), ``currency`` (ISO 4217), ``products`` (a JSON array of product
objects), ``sku`` (one or more SKUs separated by ``|``, ``,`` or ``;``), ``property:NAME`` (any other
property of the order).

Columns without an explicit mapping are mapped from their header, case-insensitively and ignoring
spaces and punctuation ("E-mail" → ``email``, "customer_id" → ``user_id``, "First name" →
``trait:first_name``); any other column becomes a trait (profiles) or an order property
(transactions) named after its header in snake case.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from core.consent.service import KEY_PATTERN
from core.imports.models import ImportKind
from core.imports.reader import ImportProblem

IGNORE = "ignore"
TIMESTAMP = "timestamp"
ORDER_ID = "order_id"
AMOUNTS = ("total", "revenue", "subtotal", "shipping", "tax", "discount")
CURRENCY = "currency"
PRODUCTS = "products"
SKU = "sku"
TRANSACTION_FIELDS = (ORDER_ID, *AMOUNTS, CURRENCY, PRODUCTS, SKU)
RESERVED_TRAITS = frozenset({"consent"})
MAX_NAME = 100
COMMON_CONSENT_CHANNELS = ("email", "sms", "whatsapp", "push")


class MappingError(ImportProblem):
    """A mapping that cannot work (unknown field, a column mapped twice, no identifier, ...)."""


@dataclass(frozen=True)
class Target:
    """What one column feeds: ``role`` (identifier, trait, consent, timestamp, ignore, order_id,
    amount, currency, products, sku, property) and ``name`` (type key, trait name, ...)."""

    role: str
    name: str = ""
    purpose: str = ""

    @property
    def spec(self) -> str:
        """The canonical field spec (``email``, ``trait:first_name``, ``consent:email:marketing``)."""
        if self.role in {"trait", "property"}:
            return f"{self.role}:{self.name}"
        if self.role == "consent":
            return f"consent:{self.name}" + (f":{self.purpose}" if self.purpose != "marketing" else "")
        if self.role in {"identifier", "amount"}:
            return self.name
        return self.role


def key_of(header: str) -> str:
    """A header in snake case: "First Name" → ``first_name``, "E-mail" → ``e_mail``."""
    return re.sub(r"[\W_]+", "_", header.casefold()).strip("_")


def _compact(header: str) -> str:
    return key_of(header).replace("_", "")


# --- automatic mapping ---------------------------------------------------------------------------
_IDENTIFIER_NAMES = {
    "user_id": {"userid", "customerid", "customernumber", "customerno", "customernr", "clientid",
                "memberid", "externalid", "accountid", "uid"},
    "email": {"email", "emailaddress", "mail", "mailaddress", "customeremail", "billingemail"},
    "phone": {"phone", "phonenumber", "mobile", "mobilephone", "mobilenumber", "cellphone", "cell",
              "telephone", "tel", "msisdn", "customerphone", "billingphone"},
    "anonymous_id": {"anonymousid", "anonid", "visitorid"},
}  # fmt: skip
_PROFILE_TIMESTAMPS = {"timestamp", "updatedat", "lastupdated", "modifiedat", "eventtime"}
_ORDER_TIMESTAMPS = _PROFILE_TIMESTAMPS | {
    "date", "time", "datetime", "orderdate", "orderedat", "ordertime", "createdat", "completedat",
    "purchasedat", "purchasedate", "processedat",
}  # fmt: skip
_TRAIT_SYNONYMS = {
    "first_name": {"firstname", "givenname", "forename"},
    "last_name": {"lastname", "surname", "familyname"},
    "name": {"name", "fullname"},
    "birthday": {"birthday", "birthdate", "dateofbirth", "dob"},
    "postal_code": {"zip", "zipcode", "postcode", "postalcode"},
    "company": {"company", "companyname", "organization", "organisation"},
}
_TRANSACTION_NAMES = {
    ORDER_ID: {"orderid", "order", "ordernumber", "orderno", "ordernr", "transactionid", "id"},
    "total": {"total", "amount", "ordertotal", "grandtotal", "totalamount", "totalprice", "ordervalue"},
    "revenue": {"revenue", "netrevenue"},
    "subtotal": {"subtotal"},
    "shipping": {"shipping", "shippingcost", "shippingamount", "shippingprice"},
    "tax": {"tax", "taxes", "vat", "taxamount", "totaltax"},
    "discount": {"discount", "discountamount", "totaldiscount", "discounts"},
    CURRENCY: {"currency", "currencycode"},
    PRODUCTS: {"products", "items", "lineitems", "productsjson"},
    SKU: {"sku", "skus", "productsku", "productskus"},
}
_CONSENT_PREFIXED = re.compile(r"consent[\s._:-]+([a-z][a-z0-9_-]*)(?:[\s.:]+([a-z][a-z0-9_-]*))?")
_CONSENT_SUFFIXED = re.compile(r"([a-z][a-z0-9]*)_(?:consent|opt_?in|optin)")


def _identifier_names(types: Iterable[str]) -> dict[str, str]:
    names = {alias: key for key, aliases in _IDENTIFIER_NAMES.items() for alias in aliases}
    for key in types:
        names.setdefault(_compact(key), key)
    return {name: key for name, key in names.items() if key in types}


def auto_spec(header: str, kind: str, types: Iterable[str], channels: Iterable[str] = ()) -> str:
    """The field spec a column gets from its header alone."""
    types = set(types)
    compact = _compact(header)
    key = key_of(header)
    if compact == "id":
        return ORDER_ID if kind == ImportKind.transactions else "user_id"
    identifier = _identifier_names(types).get(compact)
    if identifier:
        return identifier
    if kind == ImportKind.transactions:
        if compact in _ORDER_TIMESTAMPS:
            return TIMESTAMP
        for field, names in _TRANSACTION_NAMES.items():
            if compact in names:
                return field
        return f"property:{key}" if key else IGNORE
    if compact in _PROFILE_TIMESTAMPS:
        return TIMESTAMP
    consent = _CONSENT_PREFIXED.fullmatch(header.strip().casefold())
    if consent and KEY_PATTERN.match(consent.group(1)):
        purpose = consent.group(2)
        if purpose is None or KEY_PATTERN.match(purpose):
            return f"consent:{consent.group(1)}" + (f":{purpose}" if purpose else "")
    suffixed = _CONSENT_SUFFIXED.fullmatch(key)
    if suffixed and suffixed.group(1) in {*COMMON_CONSENT_CHANNELS, *channels}:
        return f"consent:{suffixed.group(1)}"
    for trait, names in _TRAIT_SYNONYMS.items():
        if compact in names:
            return f"trait:{trait}"
    if not key or key in RESERVED_TRAITS:
        return IGNORE
    return f"trait:{key}"


# --- parsing and checking specs ----------------------------------------------------------------
def _fields_help(kind: str, types: Iterable[str]) -> str:
    fixed = sorted(types) + [TIMESTAMP, IGNORE]
    if kind == ImportKind.transactions:
        return ", ".join([*fixed, *TRANSACTION_FIELDS, "property:NAME"])
    return ", ".join([*fixed, "trait:NAME", "consent:CHANNEL[:PURPOSE]"])


def parse_spec(spec: str, kind: str, types: Iterable[str]) -> Target:
    """The :class:`Target` of a field spec; :class:`MappingError` saying what is accepted otherwise."""
    types = set(types)
    text = spec.strip()
    word = text.lower()
    prefix, colon, rest = text.partition(":")
    prefix = prefix.strip().lower()
    rest = rest.strip()
    if word in {IGNORE, "skip", ""}:
        return Target(IGNORE)
    if word in types:
        return Target("identifier", word)
    if word == TIMESTAMP:
        return Target(TIMESTAMP)
    if kind == ImportKind.profiles and colon and prefix == "trait":
        if not rest or len(rest) > MAX_NAME:
            raise MappingError(f"{spec!r}: a trait name is 1 to {MAX_NAME} characters long.")
        if rest.lower() in RESERVED_TRAITS:
            raise MappingError(f"{spec!r}: consents are columns mapped to consent:CHANNEL, not a trait.")
        if rest.lower() in types:
            raise MappingError(
                f"{spec!r}: {rest.lower()} is an identifier: map the column to {rest.lower()}."
            )
        return Target("trait", rest)
    if kind == ImportKind.profiles and colon and prefix == "consent":
        channel, _, purpose = rest.lower().partition(":")
        purpose = purpose or "marketing"
        if not KEY_PATTERN.match(channel) or not KEY_PATTERN.match(purpose):
            raise MappingError(
                f"{spec!r}: write consent:CHANNEL or consent:CHANNEL:PURPOSE with lower-case letters, "
                "digits, '_', '.' or '-' (e.g. consent:email)."
            )
        return Target("consent", channel, purpose)
    if kind == ImportKind.transactions:
        if word in AMOUNTS:
            return Target("amount", word)
        if word in {ORDER_ID, CURRENCY, PRODUCTS, SKU}:
            return Target(word)
        if colon and prefix == "property":
            if not rest or len(rest) > MAX_NAME:
                raise MappingError(f"{spec!r}: a property name is 1 to {MAX_NAME} characters long.")
            if rest in {ORDER_ID, *AMOUNTS, CURRENCY, PRODUCTS}:
                raise MappingError(f"{spec!r}: map the column to {rest} itself.")
            return Target("property", rest)
    hint = ""
    if kind == ImportKind.profiles and not colon:
        hint = f" (for a trait, write trait:{text})"
    elif kind == ImportKind.transactions and not colon:
        hint = f" (for an order property, write property:{text})"
    raise MappingError(
        f"Unknown field {spec!r} for a {kind} import{hint}; the fields are: {_fields_help(kind, types)}."
    )


def parse_map_options(options: Sequence[str]) -> dict[str, str]:
    """``["Email=email", "Plan=trait:plan"]`` (the CLI's ``--map``) as ``{column: spec}``."""
    mapping: dict[str, str] = {}
    for option in options:
        column, equals, spec = option.rpartition("=")
        if not equals or not column.strip():
            raise MappingError(f"--map {option!r}: write COLUMN=FIELD, e.g. --map 'E-mail address=email'.")
        mapping[column.strip()] = spec.strip()
    return mapping


def _match_columns(headers: Sequence[str], overrides: Mapping[str, str]) -> dict[str, str]:
    by_folded = {h.casefold(): h for h in headers}
    matched: dict[str, str] = {}
    for column, spec in overrides.items():
        header = column if column in headers else by_folded.get(column.strip().casefold())
        if header is None:
            raise MappingError(
                f"No column {column!r} in the file; its columns are: {', '.join(map(repr, headers))}."
            )
        matched[header] = spec
    return matched


def build_mapping(
    headers: Sequence[str],
    kind: str,
    types: Iterable[str],
    overrides: Mapping[str, str] | None = None,
    channels: Iterable[str] = (),
    *,
    check: bool = True,
) -> dict[str, Target]:
    """Every column's :class:`Target`: the overrides (by column, case-insensitive), else automatic.

    Raises :class:`MappingError` for an unknown column or field, two columns feeding the same field
    (automatic mappings give way instead), or (with ``check``) a mapping missing what the kind needs.
    """
    if kind not in set(ImportKind):
        raise MappingError(f"Unknown import kind {kind!r}: profiles or transactions.")
    types = sorted(types)
    explicit = _match_columns(headers, overrides or {})
    targets: dict[str, Target] = {}
    owner: dict[str, str] = {}
    for header in headers:
        if header in explicit:
            target = parse_spec(explicit[header], kind, types)
            if target.role != IGNORE and target.spec in owner:
                raise MappingError(
                    f"The columns {owner[target.spec]!r} and {header!r} are both mapped to {target.spec}: "
                    "map one of them to something else or to ignore."
                )
            targets[header] = target
            if target.role != IGNORE:
                owner[target.spec] = header
    for header in headers:
        if header in explicit:
            continue
        target = parse_spec(auto_spec(header, kind, types, channels), kind, types)
        if target.role != IGNORE and target.spec in owner:
            # Taken by an explicit mapping or an earlier column: fall back to a trait/property.
            fallback = f"{'property' if kind == ImportKind.transactions else 'trait'}:{key_of(header)}"
            try:
                target = parse_spec(fallback, kind, types) if key_of(header) else Target(IGNORE)
            except MappingError:
                target = Target(IGNORE)
            if target.spec in owner:
                target = Target(IGNORE)
        targets[header] = target
        if target.role != IGNORE:
            owner[target.spec] = header
    if check:
        check_mapping(targets, kind)
    return targets


def check_mapping(targets: Mapping[str, Target], kind: str) -> None:
    """Refuse a mapping that misses what every row of ``kind`` needs."""
    roles = {t.role for t in targets.values()}
    if "identifier" not in roles:
        raise MappingError(
            "No column is mapped to an identifier (user_id, email, phone, ...): every row needs one "
            "to find its profile."
        )
    if kind == ImportKind.transactions:
        if ORDER_ID not in roles:
            raise MappingError("No column is mapped to order_id: every transaction needs one.")
        if not {"total", "revenue"} & {t.name for t in targets.values() if t.role == "amount"}:
            raise MappingError("No column is mapped to total or revenue: every transaction needs an amount.")


def specs(targets: Mapping[str, Target]) -> dict[str, str]:
    """The mapping as ``{column: spec}`` (what is stored and shown)."""
    return {header: target.spec for header, target in targets.items()}


def choices(
    kind: str, header: str, types: Iterable[str], current: str, channels: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """The ``(spec, label)`` options of the UI's select for one column; ``current`` is among them."""
    types = sorted(types)
    key = key_of(header) or "column"
    options: list[tuple[str, str]] = [(IGNORE, "Ignore this column")]
    if kind == ImportKind.transactions:
        options.append((ORDER_ID, "Order id"))
    options += [(t, f"Identifier: {t}") for t in types]
    options.append((TIMESTAMP, "Timestamp"))
    if kind == ImportKind.transactions:
        options += [(a, f"Amount: {a}") for a in AMOUNTS]
        options += [(CURRENCY, "Currency"), (PRODUCTS, "Products (JSON)"), (SKU, "SKUs")]
        options.append((f"property:{key}", f"Order property “{key}”"))
    else:
        options.append((f"trait:{key}", f"Trait “{key}”"))
        for channel in sorted({*COMMON_CONSENT_CHANNELS, *channels}):
            options.append((f"consent:{channel}", f"Consent: {channel}"))
    if current not in {spec for spec, _ in options}:
        role, _, name = current.partition(":")
        options.insert(1, (current, f"{role.capitalize()} “{name}”" if name else current))
    return options
