"""Step 3: which profile value fills which pass field, written into the chosen templates' designs.

A binding is a source (``traits.first_name``, ``loyalty.balance``...), a format (as is, a whole
number, a date) and a fallback text for profiles without the value. It becomes the field's value
text, e.g. ``{{ traits.first_name | default('Member') }}``; without a fallback, a profile lacking
the value gets no pass, and the validation report says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlmodel import Session

from core.operations.errors import OperationInvalid
from core.operations.models import OperationState, PassOperation
from core.passes import library
from core.passes.design import PassDesign
from core.passes.library import LibraryError
from core.passes.marking import mark_changed
from core.passes.models import PassTemplate
from core.passes.ui_queries import live_holders

FORMATS = {"text": "as is", "number": "a whole number", "date": "a date (YYYY-MM-DD)"}
SOURCE = re.compile(r"^(traits|computed|loyalty|profile)(\.[A-Za-z_][A-Za-z0-9_]*){1,2}$")


@dataclass(frozen=True)
class Binding:
    """What fills one pass field: a profile value, its format and a fallback text."""

    source: str
    format: str = "text"
    fallback: str = ""


@dataclass(frozen=True)
class PassField:
    """A field of a chosen template as step 3 lists it."""

    key: str
    label: str
    value: str
    templates: tuple[str, ...]


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def expression(binding: Binding) -> str:
    """The value text of a binding (``{{ traits.first_name | default('Member') }}``)."""
    source, fallback = binding.source, binding.fallback.strip()
    shown = {"number": f"{source} | int", "date": f"({source} | string)[:10]"}.get(binding.format, source)
    if not fallback:
        return "{{ " + shown + " }}"
    if binding.format == "text":
        return "{{ " + f"{source} | default({_quoted(fallback)})" + " }}"
    return "{{ " + f"({shown}) if {source} is defined else {_quoted(fallback)}" + " }}"


def chosen_templates(session: Session, operation: PassOperation) -> list[PassTemplate]:
    """The operation's templates that still exist (Apple first)."""
    found = [session.get(PassTemplate, tid) for tid in operation.template_ids().values()]
    return [template for template in found if template is not None]


def pass_fields(session: Session, operation: PassOperation) -> list[PassField]:
    """The fields of the chosen templates, by key (a key shared by both templates is listed once)."""
    by_key: dict[str, PassField] = {}
    for template in chosen_templates(session, operation):
        for field in PassDesign.model_validate(template.design).fields:
            known = by_key.get(field.key)
            names = (*known.templates, template.name) if known else (template.name,)
            by_key[field.key] = PassField(field.key, known.label if known else field.label,
                                          known.value if known else field.value, names)  # fmt: skip
    return list(by_key.values())


def save_personalization(
    session: Session, tenant_slug: str, operation: PassOperation, bindings: dict[str, Binding], actor: str
) -> list[PassTemplate]:
    """Write the bindings into the chosen templates' fields; the templates changed (their passes re-issue)."""
    if operation.state != OperationState.draft:
        raise OperationInvalid(
            [("", "The operation was launched: its personalization can no longer change.")]
        )
    problems = []
    for key, binding in bindings.items():
        if not SOURCE.match(binding.source):
            problems.append((f"bind.{key}.source", f"“{binding.source}” is not a profile value to show."))
        if binding.format not in FORMATS:
            problems.append((f"bind.{key}.format", f"Choose a format: {', '.join(FORMATS.values())}."))
        if len(binding.fallback) > 200:
            problems.append((f"bind.{key}.fallback", "The fallback is longer than 200 characters."))
    if problems:
        raise OperationInvalid(problems)
    changed = []
    for template in chosen_templates(session, operation):
        design = PassDesign.model_validate(template.design)
        fields = [field.model_copy(update={"value": expression(bindings[field.key])}) if field.key in bindings
                  else field for field in design.fields]  # fmt: skip
        if fields == design.fields:
            continue
        try:
            library.save_template(session, key=template.key, name=template.name, channel=template.channel,
                                  design=design.model_copy(update={"fields": fields}).model_dump(mode="json"),
                                  by=actor, template=template)  # fmt: skip
        except LibraryError as exc:
            raise OperationInvalid(
                [("", f"{template.name}: {where} {what}") for where, what in exc.problems]
            ) from exc
        assert template.id is not None
        mark_changed(session, tenant_slug, live_holders(session, template.id))  # phones get the new texts
        changed.append(template)
    operation.personalization = {key: vars(binding) for key, binding in bindings.items()}
    session.add(operation)
    session.flush()
    return changed
