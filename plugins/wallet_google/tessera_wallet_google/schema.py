"""What we send to Google, checked against the official Google Wallet API schemas.

The schemas come from Google's discovery document ``discovery/walletobjects.v1.json`` (shipped
unmodified, Apache-2.0, from google-api-python-client). Discovery schemas are not JSON Schema: they
are translated once into Draft 2020-12 JSON Schema, strictly (unknown properties are refused, int64
numbers are strings of digits, enums are exact), and validated with ``jsonschema``.

Discovery has no list of required properties; Google writes "Required." at the start of a
property's description. Those are required only at the top level of the pass resources in
:data:`RESOURCES` (a skinny save JWT sends ``{"id": ...}`` alone in ``Resources``, and a GET
returns a ``classReference`` that is a partial class).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from importlib.resources import files
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

DOCUMENT = "discovery/walletobjects.v1.json"
# The pass resources whose "Required." properties are enforced (top level only).
RESOURCES = frozenset(
    {
        "LoyaltyClass",
        "LoyaltyObject",
        "OfferClass",
        "OfferObject",
        "GenericClass",
        "GenericObject",
        "GiftCardClass",
        "GiftCardObject",
    }
)
REQUIRED_MARK = "Required."
INT32 = (-(2**31), 2**31 - 1)
UINT32 = (0, 2**32 - 1)
# Google's JSON encodes 64-bit integers as decimal strings, bytes as (standard or URL-safe) base64.
STRING_FORMATS = {
    "int64": r"^-?[0-9]+$",
    "uint64": r"^[0-9]+$",
    "byte": r"^[A-Za-z0-9+/_-]*={0,2}$",
}
PATTERN_MEANING = {
    STRING_FORMATS["int64"]: "a whole number written as a string of digits",
    STRING_FORMATS["uint64"]: "a non-negative whole number written as a string of digits",
    STRING_FORMATS["byte"]: "base64 text",
}


@cache
def discovery_schemas() -> dict[str, dict[str, Any]]:
    """The ``schemas`` of the shipped discovery document, by name."""
    text = files("tessera_wallet_google").joinpath(DOCUMENT).read_text("utf-8")
    schemas: dict[str, dict[str, Any]] = json.loads(text)["schemas"]
    return schemas


def _convert(node: Mapping[str, Any]) -> dict[str, Any]:
    """One discovery schema node as JSON Schema."""
    if "$ref" in node:
        return {"$ref": f"#/$defs/{node['$ref']}"}
    out: dict[str, Any] = {}
    kind = node.get("type")
    fmt = node.get("format")
    if kind == "any":
        return out
    if kind == "string" and fmt in STRING_FORMATS:
        out.update(type="string", pattern=STRING_FORMATS[fmt])
    elif kind == "integer":
        low, high = UINT32 if fmt == "uint32" else INT32
        out.update(type="integer", minimum=low, maximum=high)
    elif kind is not None:
        out["type"] = kind
    if "enum" in node:
        # Exactly the listed values: Google's legacy lowercase aliases are listed, other casings are not.
        out["enum"] = list(node["enum"])
    if "items" in node:
        out["items"] = _convert(node["items"])
    if kind == "object" or "properties" in node:
        out["properties"] = {name: _convert(prop) for name, prop in node.get("properties", {}).items()}
        extra = node.get("additionalProperties")
        # Unknown keys are refused (Google answers 400 "Invalid JSON payload ... Unknown name").
        out["additionalProperties"] = _convert(extra) if isinstance(extra, Mapping) else False
    return out


@cache
def json_schemas() -> dict[str, dict[str, Any]]:
    """Every discovery schema converted to JSON Schema, by name (no required properties yet)."""
    return {name: _convert(schema) for name, schema in discovery_schemas().items()}


def required_properties(name: str) -> list[str]:
    """The properties of resource ``name`` whose description starts with "Required." (none otherwise)."""
    if name not in RESOURCES:
        return []
    properties = discovery_schemas()[name].get("properties", {})
    return [
        prop for prop, spec in properties.items() if spec.get("description", "").startswith(REQUIRED_MARK)
    ]


def _references(node: Any, found: set[str]) -> None:
    """Add to ``found`` the schema names ``node`` refers to, directly or through them."""
    if isinstance(node, Mapping):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = ref.removeprefix("#/$defs/")
            if target not in found:
                found.add(target)
                _references(json_schemas()[target], found)
        for value in node.values():
            _references(value, found)


@cache
def _schema(name: str) -> dict[str, Any]:
    """The JSON Schema of discovery schema ``name``, with the definitions it reaches."""
    converted = json_schemas()
    if name not in converted:
        raise KeyError(f"the Google Wallet discovery document has no schema {name!r}")
    root = dict(converted[name])
    required = required_properties(name)
    if required:
        root["required"] = required
    reached: set[str] = set()
    _references(root, reached)
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **root,
        "$defs": {ref: converted[ref] for ref in sorted(reached)},
    }
    Draft202012Validator.check_schema(schema)
    return schema


@cache
def validator(name: str) -> Draft202012Validator:
    """A validator for discovery schema ``name`` that lists every problem."""
    return Draft202012Validator(_schema(name))


@cache
def _fast_check(name: str) -> Callable[[Any], Any]:
    """The same schema compiled to Python (fastjsonschema): ~20 times faster, but stops at the first problem.

    The keywords used (type, pattern, bounds, enum, items, properties, additionalProperties,
    required, and ``$ref`` as a JSON pointer) mean the same in draft 7, which it compiles.
    """
    schema = {**_schema(name), "$schema": "http://json-schema.org/draft-07/schema#"}
    return fastjsonschema.compile(schema)


def _join(path: str, key: str) -> str:
    """``path`` extended by property ``key`` (``$`` is the body itself)."""
    return key if path == "$" else f"{path}.{key}"


def _problems_of(error: ValidationError) -> list[str]:
    """One error as "json.path: message" lines, naming the property itself when one is missing or unknown."""
    path = error.json_path.removeprefix("$.") if error.json_path != "$" else "$"
    if error.validator == "required" and isinstance(error.instance, Mapping):
        missing = [key for key in error.validator_value if key not in error.instance]
        return [f"{_join(path, key)}: required property is missing" for key in missing]
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        known = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
        unknown = [key for key in error.instance if key not in known]
        return [f"{_join(path, key)}: unknown property (not in Google's schema)" for key in unknown]
    if error.validator == "pattern" and isinstance(error.instance, str):
        meaning = PATTERN_MEANING.get(str(error.validator_value), f"text matching {error.validator_value}")
        return [f"{path}: {error.instance!r} is not {meaning}"]
    return [f"{path}: {error.message}"]


def schema_problems(name: str, body: Mapping[str, Any]) -> list[str]:
    """The problems of ``body`` against discovery schema ``name``, each "json.path: message"; [] if valid."""
    try:
        _fast_check(name)(body)
        return []  # valid: the common case, checked for every pass at issue
    except fastjsonschema.JsonSchemaException:
        pass
    problems: list[str] = []
    for error in validator(name).iter_errors(body):
        for problem in _problems_of(error):
            if problem not in problems:  # several required errors at one place repeat the same lines
                problems.append(problem)
    return problems
