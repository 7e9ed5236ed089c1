"""What the side panel's inputs show: the trigger, the goal and re-entry, or one step by its type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.messages.content import fields_of
from web.journey_builder.flow import step_title
from web.journey_builder.forms import REENTRY_MODES, TRIGGER_DEFAULTS, VALUE_TYPES, value_text, value_type
from web.journey_builder.graph import STEP_TYPES, ports, removed_with, steps_of
from web.journey_builder.options import pass_templates
from web.journey_builder.words import REENTRY, TRIGGER_TYPES, lane_label, split_duration, step_words
from web.segment_builder.options import Options
from web.segment_builder.tree import as_dict, as_list
from web.segment_builder.values import plain

DURATION_UNITS = {"minutes": "minutes", "hours": "hours", "days": "days"}


def _duration_view(seconds: Any) -> dict[str, Any]:
    amount, unit = split_duration(seconds)
    units = dict(DURATION_UNITS)
    if unit not in units:
        units[unit] = unit
    return {"amount": amount, "unit": unit, "units": units}


def trigger_panel(trigger: Any, options: Options) -> dict[str, Any]:
    """The trigger's inputs: its type and that type's settings."""
    trigger = as_dict(trigger)
    kind = str(trigger.get("type", ""))
    segment = trigger.get("segment_id")
    return {"kind": "trigger", "type": kind, "types": TRIGGER_TYPES, "known": kind in TRIGGER_DEFAULTS,
            "event": str(trigger.get("event") or ""), "segment_id": segment, "segments": options.segments,
            "segment_missing": segment is not None and segment not in options.names,
            "trait": str(trigger.get("trait") or ""), "annual": bool(trigger.get("annual")),
            "days_before": plain(trigger.get("days_before") or 0), "at": str(trigger.get("at") or "")}  # fmt: skip


def settings_panel(definition: dict[str, Any]) -> dict[str, Any]:
    """The goal's and the re-entry policy's inputs."""
    goal, reentry = as_dict(definition.get("goal")), as_dict(definition.get("reentry"))
    return {"kind": "settings", "goal_event": str(goal.get("event") or ""),
            "goal_days": plain(goal.get("within_days", 7)), "mode": str(reentry.get("mode", "never")),
            "modes": {m: REENTRY[m] for m in REENTRY_MODES}, "cooldown": plain(reentry.get("cooldown_hours") or 0)}  # fmt: skip


def _send_view(step: dict[str, Any], options: Options) -> dict[str, Any]:
    key = str(step.get("channel") or "")
    channel = options.scope.channels.get(key)
    content = as_dict(step.get("content"))
    variants = {str(code): as_dict(texts) for code, texts in as_dict(content.get("variants")).items()}
    fields: list[dict[str, Any]]
    if channel is not None:
        fields = [{"name": n, "required": r, "help": h} for n, r, h in fields_of(channel)]
    else:  # not enabled (any more): its texts stay editable as they are
        names = sorted({name for texts in variants.values() for name in texts})
        fields = [{"name": n, "required": False, "help": n} for n in names]
    return {"channel": key, "channel_known": channel is not None, "fields": fields,
            "channels": [(k, ch.label) for k, ch in sorted(options.scope.channels.items())],
            "languages": [{"code": code, "texts": {f["name"]: str(texts.get(f["name"], "")) for f in fields}}
                          for code, texts in variants.items()],
            "fallback": str(content.get("fallback") or ""), "marketing": step.get("marketing", True) is not False}  # fmt: skip


def _type_view(step: dict[str, Any], options: Options) -> dict[str, Any]:
    kind = step.get("type")
    if kind == "send":
        return _send_view(step, options)
    if kind == "wait":
        return {"mode": "until" if step.get("until") else "duration", "until": str(step.get("until") or "09:00"),
                **_duration_view(step.get("seconds"))}  # fmt: skip
    if kind == "wait_for_event":
        return {"event": str(step.get("event") or ""), **_duration_view(step.get("timeout_seconds"))}
    if kind == "split":
        branches = [{"index": i, "weight": plain(as_dict(b).get("weight")), "label": lane_label(step, f"branch:{i}")}
                    for i, b in enumerate(as_list(step.get("branches")))]  # fmt: skip
        return {"branches": branches, "holdout": plain(step.get("holdout") or 0)}
    if kind == "update_trait":
        value = step.get("value")
        return {"trait": str(step.get("trait") or ""), "value_type": value_type(value),
                "value": value_text(value), "value_types": VALUE_TYPES}  # fmt: skip
    if kind == "assign_offer":
        return {"offer_id": plain(step.get("offer_id") or ""), "offers": options.offers}
    if kind in ("update_pass", "notify_on_pass"):
        view = {"template_id": plain(step.get("template_id") or ""), "templates": pass_templates(options)}
        if kind == "notify_on_pass":
            view["message"] = str(step.get("message") or "")
        return view
    return {}


def step_panel(
    definition: dict[str, Any], key: str, options: Options, problems: Mapping[str, list[str]]
) -> dict[str, Any]:
    """One step's inputs: its label, its type's settings, and where each of its ways out leads."""
    steps = steps_of(definition)
    step = as_dict(steps.get(key))
    kind = str(step.get("type", ""))
    choices = [(other, f"{step_title(s)} ({other})") for other, s in steps.items() if other != key]
    outs = [{"port": port, "label": "Then" if port == "next" else lane_label(step, port), "to": to}
            for port, to in ports(step)]  # fmt: skip
    return {"kind": "step", "key": key, "type": kind, "type_label": STEP_TYPES.get(kind, kind),
            "label": str(step.get("label") or ""), "words": step_words(step, options), "ports": outs,
            "choices": choices, "problems": list(problems.get(key, [])), "removes": removed_with(definition, key), **_type_view(step, options)}  # fmt: skip
