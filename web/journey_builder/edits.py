"""One edit of the builder: the side panel's inputs applied, then the action of the button pressed.

Actions are ``verb|argument|...``: ``open|<panel>`` opens the trigger, the settings or a step in
the panel; ``add|<source>|<port>|<type>`` puts a new step on a connector and opens it;
``delete|<key>`` deletes a step; ``lang-add`` / ``lang-remove|<code>`` add and remove a send
step's languages; ``path-add`` / ``path-remove|<i>`` a split's paths. Anything else (``save``,
``refresh``) only applies the inputs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from core.plugin_api import Channel, SegmentConditionType
from web.journey_builder.forms import (
    Problems,
    add_language,
    add_path,
    new_step,
    read_ports,
    read_settings,
    read_step,
    read_trigger,
    remove_language,
    remove_path,
)
from web.journey_builder.graph import START, insert, remove, steps_of
from web.segment_builder.values import Fields


@dataclass
class Edit:
    """The definition after an edit, the panel to show next, and what was wrong in the inputs."""

    definition: dict[str, Any]
    panel: str
    problems: Problems = field(default_factory=list)


def apply_panel(
    definition: dict[str, Any],
    form: FormData | Mapping[str, Any],
    channels: Mapping[str, Channel],
    conditions: Mapping[str, SegmentConditionType],
    segments: list[tuple[int, str]],
) -> Edit:
    """The definition with the inputs of the panel the form was rendered with (``panel``, ``panel_type``)."""
    f = Fields(form)
    panel = f.text("panel")
    changed = copy.deepcopy(definition)
    if panel == "trigger":
        changed["trigger"], problems = read_trigger(changed.get("trigger"), f, segments)
        return Edit(changed, panel, problems)
    if panel == "settings":
        changed, problems = read_settings(changed, f)
        return Edit(changed, panel, problems)
    step = steps_of(changed).get(panel)
    if not isinstance(step, dict) or step.get("type") != f.text("panel_type"):
        return Edit(changed, panel)  # rendered for a step that is gone or changed since
    changed["steps"][panel], problems = read_step(panel, step, f, channels, form, conditions)
    return Edit(read_ports(changed, panel, f), panel, problems)


def apply_action(
    edit: Edit, action: str, form: FormData | Mapping[str, Any], channels: Mapping[str, Channel]
) -> Edit:
    """The edit after the button pressed (see the module's documentation)."""
    verb, *args = action.split("|")
    definition, panel = edit.definition, edit.panel
    step = steps_of(definition).get(panel)
    if verb == "open" and args:
        return Edit(definition, args[0], edit.problems)
    if verb == "add" and len(args) == 3:
        source, port, kind = args
        fresh = new_step(kind, channels)
        if fresh is None or (source != START and source not in steps_of(definition)):
            return edit
        changed, key = insert(definition, source, port, fresh)
        return Edit(changed, key, edit.problems)
    if verb == "delete" and args and args[0] in steps_of(definition):
        return Edit(remove(definition, args[0]), "" if panel == args[0] else panel, edit.problems)
    if verb == "lang-add" and isinstance(step, dict):
        problems = add_language(step, Fields(form).text("new_language"), channels)
        return Edit(definition, panel, edit.problems + [(f"steps.{panel}.{p}", m) for p, m in problems])
    if verb == "lang-remove" and args and isinstance(step, dict):
        remove_language(step, args[0])
    elif verb == "path-add" and isinstance(step, dict) and step.get("type") == "split":
        add_path(step)
    elif verb == "path-remove" and args and args[0].isdigit():
        return Edit(remove_path(definition, panel, int(args[0])), panel, edit.problems)
    return edit
