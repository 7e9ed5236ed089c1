"""Bodies checked against FCM's own schemas (the shipped discovery document ``discovery/fcm.v1.json``).

Discovery schemas are not JSON Schema: they are translated once into Draft 2020-12, strictly
(unknown properties are refused, as Google's proto parser does; int64 values are digit strings).
Every request the fake receives is checked, so a valid body is checked by the schema compiled to
Python (``fastjsonschema``, about ten times faster); ``jsonschema`` lists the problems of the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from importlib.resources import files
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator

DOCUMENT = "discovery/fcm.v1.json"
INT64 = r"^-?[0-9]+$"


@cache
def discovery() -> dict[str, Any]:
    """The shipped discovery document."""
    document: dict[str, Any] = json.loads(files("tessera_push_fcm").joinpath(DOCUMENT).read_text("utf-8"))
    return document


def _convert(node: Mapping[str, Any]) -> dict[str, Any]:
    """One discovery schema node as JSON Schema."""
    if "$ref" in node:
        return {"$ref": f"#/$defs/{node['$ref']}"}
    kind = node.get("type")
    out: dict[str, Any] = {}
    if kind == "any":
        return out
    if kind == "string" and node.get("format") in {"int64", "uint64"}:
        out.update(type="string", pattern=INT64)
    elif kind is not None:
        out["type"] = kind
    if "enum" in node:
        out["enum"] = list(node["enum"])
    if "items" in node:
        out["items"] = _convert(node["items"])
    if kind == "object" or "properties" in node:
        out["properties"] = {name: _convert(prop) for name, prop in node.get("properties", {}).items()}
        extra = node.get("additionalProperties")
        out["additionalProperties"] = _convert(extra) if isinstance(extra, Mapping) else False
    return out


@cache
def _schema(name: str) -> dict[str, Any]:
    """Discovery schema ``name`` as JSON Schema, with every definition."""
    defs = {key: _convert(schema) for key, schema in discovery()["schemas"].items()}
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": f"#/$defs/{name}",
        "$defs": defs,
    }
    Draft202012Validator.check_schema(schema)
    return schema


@cache
def validator(name: str) -> Draft202012Validator:
    """A validator for discovery schema ``name`` (e.g. ``SendMessageRequest``) that lists every problem."""
    return Draft202012Validator(_schema(name))


@cache
def _fast_check(name: str) -> Callable[[Any], Any]:
    """The same schema compiled to Python; it raises at the first problem.

    Its keywords (type, pattern, enum, items, properties, additionalProperties, and ``$ref`` as a
    JSON pointer) mean the same in draft 7, which ``fastjsonschema`` compiles.
    """
    return fastjsonschema.compile({**_schema(name), "$schema": "http://json-schema.org/draft-07/schema#"})


def schema_problems(name: str, body: Any) -> list[str]:
    """The problems of ``body`` against discovery schema ``name``, each "path: message"; [] if valid."""
    try:
        _fast_check(name)(body)
        return []
    except fastjsonschema.JsonSchemaException:
        return [f"{error.json_path}: {error.message}" for error in validator(name).iter_errors(body)]
