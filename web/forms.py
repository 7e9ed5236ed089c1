"""HTML forms generated from a plugin's pydantic config model, and parsed back.

Secrets (``SecretStr`` fields) are write-only: the form shows whether one is stored, never its
value, and a blank secret field keeps the stored one.
"""

from __future__ import annotations

import base64
import enum
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from core.tenancy.plugin_settings import secret_fields


@dataclass
class FormField:
    """One input of a generated form."""

    name: str
    label: str
    kind: str  # text, password, number, checkbox, select, textarea, file
    required: bool
    value: Any = ""
    choices: list[str] = field(default_factory=list)
    help: str = ""
    secret_set: bool = False
    problem: str = ""


def _unwrap(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and args:
        return args[0]
    return annotation


MAX_UPLOAD = 1_000_000  # a certificate or key file is a few KB


def upload_mode(info: FieldInfo) -> str | None:
    """How an uploaded file becomes the field's value: ``"base64"`` (binary, e.g. a .p12) or ``"text"``
    (e.g. a PEM certificate), as a plugin asks with ``Field(json_schema_extra={"upload": ...})``."""
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    mode = extra.get("upload")
    return mode if mode in ("base64", "text") else None


def uploaded_value(data: bytes, mode: str) -> str:
    """An uploaded file as a field value: base64 of its bytes, or its text (``"text"`` mode) when it
    is text; a binary file given for a text field (a DER ``.cer`` for a PEM) comes as base64."""
    if mode == "text":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return base64.b64encode(data).decode()


def upload_fields(model: type[BaseModel]) -> dict[str, str]:
    """The fields of ``model`` filled from an uploaded file, with their :func:`upload_mode`."""
    found = {name: upload_mode(info) for name, info in model.model_fields.items()}
    return {name: mode for name, mode in found.items() if mode is not None}


def _kind(info: FieldInfo, secret: bool) -> tuple[str, list[str]]:
    if upload_mode(info):
        return "file", []
    if secret:
        return "password", []
    annotation = _unwrap(info.annotation)
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return "checkbox", []
    if annotation in (int, float):
        return "number", []
    if origin is Literal:
        return "select", [str(a) for a in typing.get_args(annotation)]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "select", [str(m.value) for m in annotation]
    if origin in (list, tuple, set, dict) or annotation in (list, dict):
        return "textarea", []
    return "text", []


def _display(value: Any, kind: str, annotation: Any) -> Any:
    if value is None:
        return ""
    if kind == "textarea":
        if typing.get_origin(_unwrap(annotation)) is dict or isinstance(value, dict):
            return json.dumps(value, indent=2)
        return "\n".join(str(v) for v in value)
    return value


def form_fields(
    model: type[BaseModel], stored: dict[str, Any], problems: dict[str, str] | None = None
) -> list[FormField]:
    """The inputs for ``model``, filled from ``stored`` (secrets only say whether they are set)."""
    secrets = secret_fields(model)
    fields = []
    for name, info in model.model_fields.items():
        kind, choices = _kind(info, name in secrets)
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        value = stored.get(name, default)
        fields.append(
            FormField(
                name=name,
                label=info.title or name.replace("_", " ").capitalize(),
                kind=kind,
                required=info.is_required(),
                value="" if kind == "password" or name in secrets else _display(value, kind, info.annotation),
                choices=choices,
                help=info.description or "",
                secret_set=name in secrets and bool(stored.get(name)),
                problem=(problems or {}).get(name, ""),
            )
        )
    return fields


def parse_form(model: type[BaseModel], form: dict[str, str]) -> dict[str, Any]:
    """Turn submitted strings into values ``model`` can validate (lists by line, dicts as JSON)."""
    values: dict[str, Any] = {}
    secrets = secret_fields(model)
    for name, info in model.model_fields.items():
        kind, _ = _kind(info, name in secrets)
        raw = form.get(name)
        if kind == "checkbox":
            values[name] = raw == "true"
        elif raw is None or (raw == "" and kind != "password" and not info.is_required()):
            continue
        elif kind == "textarea":
            if typing.get_origin(_unwrap(info.annotation)) is dict:
                try:
                    values[name] = json.loads(raw or "{}")
                except json.JSONDecodeError:
                    values[name] = raw  # validation then reports the field
            else:
                values[name] = [line.strip() for line in raw.splitlines() if line.strip()]
        else:
            values[name] = raw
    return values
