"""The side panel's inputs read back into the definition, and new steps with their first settings.

The panel edits one thing: the trigger (``panel=trigger``), the goal and re-entry
(``panel=settings``) or one step (``panel=<key>``, with ``panel_type`` its type when rendered, so
inputs rendered for another type are never applied). Inputs that do not make sense (a duration
that is not a number, a time that is not HH:MM) leave the value as it was and say so as a
problem ``(path, message)``, in the shape of the core's :class:`DefinitionInvalid` problems.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from starlette.datastructures import FormData

from core.messages.content import fields_of
from core.plugin_api import Channel
from web.journey_builder.graph import ports, reachable, set_target, steps_of
from web.journey_builder.words import UNITS
from web.segment_builder.form import rule_from_form
from web.segment_builder.tree import as_dict, as_list
from web.segment_builder.values import Fields, plain, typed

Problems = list[tuple[str, str]]
TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
LANGUAGE = re.compile(r"[a-z]{2,3}(?:_[A-Z]{2}|_[A-Z][a-z]{3})?")
VALUE_TYPES = {"text": "Text", "number": "Number", "boolean": "Yes / no"}
TRIGGER_DEFAULTS: dict[str, dict[str, Any]] = {
    "event": {"type": "event", "event": ""},
    "segment_entered": {"type": "segment_entered", "segment_id": None},
    "segment_exited": {"type": "segment_exited", "segment_id": None},
    "date": {"type": "date", "trait": "birthday", "annual": True, "days_before": 0, "at": "09:00"},
    "api": {"type": "api"},
}
REENTRY_MODES = ("never", "after_exit", "always")


# --- new steps ----------------------------------------------------------------------------------
def default_content(channel: Channel | None, language: str = "en") -> dict[str, Any]:
    """Empty texts for the channel's required fields in one language."""
    required = [name for name, needed, _ in fields_of(channel) if needed] if channel else []
    return {"variants": {language: dict.fromkeys(required, "")}, "fallback": language}


def new_step(kind: str, channels: Mapping[str, Channel]) -> dict[str, Any] | None:
    """A fresh step of ``kind`` with sensible first settings (None for an unknown kind)."""
    if kind == "send":
        key = next(iter(sorted(channels)), "")
        return {"type": "send", "channel": key, "content": default_content(channels.get(key)),
                "marketing": True, "next": None}  # fmt: skip
    fresh: dict[str, dict[str, Any]] = {
        "wait": {"type": "wait", "seconds": 86_400, "next": None},
        "wait_for_event": {"type": "wait_for_event", "event": "", "timeout_seconds": 259_200,
                           "on_event": None, "on_timeout": None},
        "branch": {"type": "branch", "rule": {"all": []}, "yes": None, "no": None},
        "split": {"type": "split", "branches": [{"weight": 50, "next": None}, {"weight": 50, "next": None}],
                  "holdout": 0},
        "update_trait": {"type": "update_trait", "trait": "", "value": "", "next": None},
        "assign_offer": {"type": "assign_offer", "offer_id": None, "next": None},
        "update_pass": {"type": "update_pass", "template_id": None, "next": None},
        "notify_on_pass": {"type": "notify_on_pass", "template_id": None, "message": "", "next": None},
        "exit": {"type": "exit"},
    }  # fmt: skip
    return copy.deepcopy(fresh[kind]) if kind in fresh else None


# --- reading inputs -----------------------------------------------------------------------------
def _whole(f: Fields, name: str, current: Any, path: str, problems: Problems, minimum: int = 0) -> Any:
    """A whole number input (``current`` kept, with a problem, when it is not one)."""
    if not f.has(name):
        return current
    text = f.text(name).strip()
    if re.fullmatch(r"-?[0-9]+", text) and int(text) >= minimum:
        return int(text)
    problems.append(
        (path, f"{text or 'nothing'} is not a whole number of at least {minimum}; kept the last value")
    )
    return current


def _number(f: Fields, name: str, current: Any, path: str, problems: Problems) -> Any:
    """A number input of at least 0 (``current`` kept, with a problem, when it is not one)."""
    if not f.has(name):
        return current
    number = typed(f.text(name))
    if isinstance(number, int | float) and not isinstance(number, bool) and number >= 0:
        return number
    problems.append(
        (path, f"{f.text(name).strip() or 'nothing'} is not a number of at least 0; kept the last value")
    )
    return current


def _duration(f: Fields, current: Any, path: str, problems: Problems) -> Any:
    unit = f.text("unit", "hours")
    amount = _whole(f, "amount", None, path, problems, minimum=1)
    if amount is None or unit not in UNITS:
        return current
    return amount * UNITS[unit]


def _time(f: Fields, name: str, current: Any, path: str, problems: Problems) -> Any:
    if not f.has(name):
        return current
    text = f.text(name).strip()[:5]
    if TIME.fullmatch(text):
        return text
    problems.append((path, f"{text or 'nothing'} is not a time of day such as 09:00; kept the last value"))
    return current


def read_trigger(trigger: Any, f: Fields, segments: list[tuple[int, str]]) -> tuple[dict[str, Any], Problems]:
    """The trigger from the panel's inputs (a new type starts from that type's first settings)."""
    before = dict(as_dict(trigger))
    kind = f.text("trigger_type", str(before.get("type", "")))
    problems: Problems = []
    if kind not in TRIGGER_DEFAULTS:
        return before, [("trigger.type", f"{kind!r} is not a trigger type")]
    if kind != before.get("type"):
        fresh = copy.deepcopy(TRIGGER_DEFAULTS[kind])
        shared = {k: v for k, v in before.items() if k in fresh and k != "type"}
        if "segment_id" in fresh and shared.get("segment_id") is None and segments:
            shared["segment_id"] = segments[0][0]
        return {**fresh, **shared}, problems
    found = {**TRIGGER_DEFAULTS[kind], **before}
    if kind == "event":
        found["event"] = f.text("event", str(found.get("event") or "")).strip()
    elif kind in ("segment_entered", "segment_exited"):
        raw = f.text("segment_id", str(found.get("segment_id") or ""))
        found["segment_id"] = int(raw) if raw.isdigit() else None
    elif kind == "date":
        found["trait"] = f.text("trait", str(found.get("trait") or "")).strip()
        found["annual"] = f.has("annual")
        found["days_before"] = _whole(
            f, "days_before", found.get("days_before"), "trigger.days_before", problems
        )
        found["at"] = _time(f, "at", found.get("at"), "trigger.at", problems)
    return found, problems


def read_settings(definition: dict[str, Any], f: Fields) -> tuple[dict[str, Any], Problems]:
    """The definition with the goal and the re-entry policy from the panel's inputs."""
    changed, problems = copy.deepcopy(definition), Problems()
    goal = as_dict(changed.get("goal"))
    event = f.text("goal_event", str(goal.get("event") or "")).strip()
    if event:
        days = _whole(f, "goal_days", goal.get("within_days", 7), "goal.within_days", problems, minimum=1)
        changed["goal"] = {"event": event, "within_days": days if days is not None else 7}
    else:
        changed["goal"] = None
    reentry = dict(as_dict(changed.get("reentry")) or {"mode": "never", "cooldown_hours": 0})
    mode = f.text("reentry_mode", str(reentry.get("mode", "never")))
    reentry["mode"] = mode if mode in REENTRY_MODES else reentry.get("mode", "never")
    reentry["cooldown_hours"] = _whole(f, "cooldown_hours", reentry.get("cooldown_hours", 0),
                                       "reentry.cooldown_hours", problems)  # fmt: skip
    changed["reentry"] = reentry
    return changed, problems


def _read_content(step: dict[str, Any], f: Fields, channel: Channel | None) -> dict[str, Any]:
    content = as_dict(step.get("content"))
    variants = {str(k): dict(as_dict(v)) for k, v in as_dict(content.get("variants")).items()}
    for language, texts in variants.items():
        prefix = f"text.{language}."
        for name in [k[len(prefix) :] for k in f.form.keys() if isinstance(k, str) and k.startswith(prefix)]:
            texts[name] = f.text(prefix + name)
    if channel is not None:
        known = {name: needed for name, needed, _ in fields_of(channel)}
        for language, texts in variants.items():
            kept = {n: t for n, t in texts.items() if n in known and (known[n] or str(t).strip())}
            kept.update({n: "" for n, needed in known.items() if needed and n not in kept})
            variants[language] = {n: kept[n] for n in known if n in kept}
    fallback = f.text("fallback", str(content.get("fallback", "")))
    if fallback not in variants and variants:
        fallback = next(iter(variants))
    return {"variants": variants, "fallback": fallback}


def value_text(value: Any) -> str:
    """What the value input shows for a trait value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else plain(value)


def _read_value(step: dict[str, Any], f: Fields, path: str, problems: Problems) -> Any:
    current = step.get("value")
    before = value_type(current)
    kind = f.text("value_type", before)
    text = f.text("value", value_text(current))
    if kind == "boolean":
        return text.strip().lower() in ("true", "yes", "1")
    if kind == "number":
        number = typed(text)
        if isinstance(number, int | float) and not isinstance(number, bool):
            return number
        if kind != before:  # just switched to a number: start from 0
            return 0
        problems.append((path, f"{text.strip() or 'nothing'} is not a number; kept the last value"))
        return current
    return text


def value_type(value: Any) -> str:
    """How a trait value is edited: as text, a number or yes/no."""
    if isinstance(value, bool):
        return "boolean"
    return "number" if isinstance(value, int | float) else "text"


def read_step(
    key: str, step: dict[str, Any], f: Fields, channels: Mapping[str, Channel], form: FormData | Mapping[str, Any],
    conditions: Mapping[str, Any],
) -> tuple[dict[str, Any], Problems]:  # fmt: skip
    """The step from the panel's inputs (its ports are read by :func:`read_ports`)."""
    found, problems = copy.deepcopy(step), Problems()
    path = f"steps.{key}"
    label = f.text("label", str(found.get("label") or "")).strip()
    if label:
        found["label"] = label
    else:
        found.pop("label", None)
    kind = found.get("type")
    if kind == "send":
        found["channel"] = f.text("channel", str(found.get("channel") or ""))
        found["marketing"] = f.has("marketing")
        found["content"] = _read_content(found, f, channels.get(found["channel"]))
    elif kind == "wait":
        if f.text("wait_mode", "until" if found.get("until") else "duration") == "until":
            found["until"] = _time(f, "until", found.get("until") or "09:00", f"{path}.until", problems)
            found.pop("seconds", None)
        else:
            found["seconds"] = _duration(f, found.get("seconds") or 86_400, f"{path}.seconds", problems)
            found.pop("until", None)
    elif kind == "wait_for_event":
        found["event"] = f.text("event", str(found.get("event") or "")).strip()
        found["timeout_seconds"] = _duration(
            f, found.get("timeout_seconds"), f"{path}.timeout_seconds", problems
        )
    elif kind == "branch" and f.has("rule"):
        found["rule"] = rule_from_form(form, conditions)
    elif kind == "split":
        for i, branch in enumerate(as_list(found.get("branches"))):
            if isinstance(branch, dict):
                branch["weight"] = _number(f, f"weight.{i}", branch.get("weight"), f"{path}.branches[{i}].weight",
                                           problems)  # fmt: skip
        found["holdout"] = _number(f, "holdout", found.get("holdout", 0), f"{path}.holdout", problems)
    elif kind == "update_trait":
        found["trait"] = f.text("trait", str(found.get("trait") or "")).strip()
        found["value"] = _read_value(found, f, f"{path}.value", problems)
    elif kind == "assign_offer":
        found["offer_id"] = _whole(
            f, "offer_id", found.get("offer_id"), f"{path}.offer_id", problems, minimum=1
        )
    elif kind in ("update_pass", "notify_on_pass"):
        if f.has("template_id"):  # nothing chosen: every pass template
            chosen = f.text("template_id").strip()
            found["template_id"] = (
                _whole(f, "template_id", found.get("template_id"), f"{path}.template_id", problems, minimum=1)
                if chosen
                else None
            )
        if kind == "notify_on_pass":
            found["message"] = f.text("message", str(found.get("message") or "")).strip()
    return found, problems


def read_ports(definition: dict[str, Any], key: str, f: Fields) -> dict[str, Any]:
    """The definition with step ``key``'s ports pointed where the panel's "then" selects say."""
    changed = copy.deepcopy(definition)
    steps = steps_of(changed)
    for port, to in ports(steps.get(key)):
        name = f"goto.{port}"
        if f.has(name):
            chosen = f.text(name) or None
            if chosen != to and (chosen is None or (chosen in steps and chosen != key)):
                set_target(changed, key, port, chosen)
    return changed


# --- panel actions -------------------------------------------------------------------------------
def add_language(step: dict[str, Any], code: str, channels: Mapping[str, Channel]) -> Problems:
    """Add texts in language ``code`` to a send step (copied from the fallback's, to translate)."""
    code = code.strip().replace("-", "_")
    if not LANGUAGE.fullmatch(code):
        return [("language", f"{code or 'nothing'} is not a language code such as en, fr or pt_BR")]
    content = step.setdefault("content", {"variants": {}, "fallback": code})
    variants = content.setdefault("variants", {})
    if code not in variants:
        model = as_dict(variants.get(content.get("fallback")))
        variants[code] = (
            dict(model) or default_content(channels.get(str(step.get("channel"))))["variants"]["en"]
        )
    return []


def remove_language(step: dict[str, Any], code: str) -> None:
    """Remove a language's texts from a send step (the last one stays)."""
    content = as_dict(step.get("content"))
    variants = as_dict(content.get("variants"))
    if code in variants and len(variants) > 1:
        del variants[code]
        if content.get("fallback") == code:
            content["fallback"] = next(iter(variants))


def add_path(step: dict[str, Any]) -> None:
    """One more path in a split, weighted like the others on average, leading to the end."""
    branches = step.setdefault("branches", [])
    weights: list[int] = [
        b["weight"] for b in branches if isinstance(b, dict) and isinstance(b.get("weight"), int)
    ]
    branches.append({"weight": round(sum(weights) / len(weights)) if weights else 50, "next": None})


def remove_path(definition: dict[str, Any], key: str, index: int) -> dict[str, Any]:
    """The definition without a split's ``index``-th path (two always stay); its steps go with it."""
    changed = copy.deepcopy(definition)
    step = steps_of(changed).get(key)
    branches = as_list(as_dict(step).get("branches"))
    if len(branches) <= 2 or not 0 <= index < len(branches):
        return changed
    before = set(reachable(changed))
    del branches[index]
    for gone in before - set(reachable(changed)):
        steps_of(changed).pop(gone, None)
    return changed
