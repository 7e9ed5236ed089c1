"""A message's content for one channel: a :class:`MessageTemplate` whose fields are the channel's.

Each language's texts fill the fields of the channel's ``Template`` (a push has a title and a
body, a WhatsApp message a body...). Checked when saved: Jinja2 syntax and variables, and fields
the channel does not have or needs.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session

from core.messages.personalization import MessageTemplate, TemplateInvalid, TemplateProblem, check_template
from core.plugin_api import Channel, Suggestion
from core.plugins import get_host
from core.tenancy.errors import TenancyError
from core.tenancy.models import Tenant
from core.tenancy.plugin_settings import channel_context

log = logging.getLogger(__name__)


def check_content(channel: Channel, data: Any) -> MessageTemplate:
    """The content as a template for ``channel``; :class:`TemplateInvalid` listing every problem."""
    try:
        template = MessageTemplate.model_validate(data)
    except ValidationError as exc:
        problems = [TemplateProblem("", ".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]
        raise TemplateInvalid(problems) from exc
    problems = []
    try:
        check_template(template)
    except TemplateInvalid as exc:
        problems.extend(exc.problems)
    fields = channel.Template.model_fields
    required = {name for name, info in fields.items() if info.is_required()}
    for language, texts in sorted(template.variants.items()):
        for name in sorted(set(texts) - set(fields)):
            known = ", ".join(sorted(fields)) or "none"
            problems.append(
                TemplateProblem(language, name, f"{channel.label} has no field {name!r} (fields: {known})")
            )
        for name in sorted(required - set(texts)):
            problems.append(TemplateProblem(language, name, f"{channel.label} needs this field"))
    if problems:
        raise TemplateInvalid(problems)
    return template


def fields_of(channel: Channel) -> list[tuple[str, bool, str]]:
    """The channel's template fields a marketer fills in: (name, required, description)."""
    return [
        (name, info.is_required(), info.description or name.replace("_", " ").capitalize())
        for name, info in channel.Template.model_fields.items()
    ]


def suggestions_of(control: Session, tenant: Tenant, channel: Channel) -> dict[str, list[Suggestion]]:
    """What the channel offers the tenant's marketers for its template fields, by field; nothing when
    it is not enabled or its plugin fails (the editors work without: every field can be typed)."""
    try:
        found = channel.suggestions(channel_context(control, tenant, get_host(), channel.key))
    except TenancyError:
        return {}
    except Exception:  # a plugin's bug must not stop a marketer writing a message
        log.exception("suggestions of channel %s failed for %s", channel.key, tenant.slug)
        return {}
    names = set(channel.Template.model_fields)
    return {name: list(values) for name, values in found.items() if name in names and values}
