"""Triggers, steps, goals and re-entry policies in words, for the flow's boxes and the lists."""

from __future__ import annotations

import string
from typing import Any

from web.journey_builder.options import pass_templates
from web.segment_builder.options import Options
from web.segment_builder.tree import as_dict, as_list, group_kind, is_not
from web.segment_builder.values import plain, shown
from web.segment_builder.words import condition_words

UNITS = {"days": 86_400, "hours": 3_600, "minutes": 60, "seconds": 1}
TRIGGER_TYPES = {
    "event": "An event is tracked",
    "segment_entered": "A profile enters a segment",
    "segment_exited": "A profile leaves a segment",
    "date": "A date in the profile's traits",
    "api": "Entered through the API",
}
REENTRY = {
    "never": "once only",
    "after_exit": "again after leaving it",
    "always": "each time the trigger fires",
}
PREFERRED_FIELDS = ("title", "subject", "body", "text")
SHORT = 60


def split_duration(seconds: Any) -> tuple[Any, str]:
    """``seconds`` as (amount, unit) in the largest unit that divides it (86400 → (1, "days"))."""
    if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds <= 0:
        return (plain(seconds) if seconds is not None else ""), "hours"
    for unit, size in UNITS.items():
        if seconds % size == 0:
            return seconds // size, unit
    return seconds, "seconds"


def duration_words(seconds: Any) -> str:
    """``86400`` as ``1 day``, ``7200`` as ``2 hours``."""
    amount, unit = split_duration(seconds)
    if not isinstance(amount, int):
        return f"{amount or '?'} seconds"
    return f"{amount} {unit[:-1] if amount == 1 else unit}"


def _quoted(text: Any) -> str:
    return f"“{text}”" if text else "(not set)"


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SHORT else flat[: SHORT - 1] + "…"


def trigger_words(trigger: Any, options: Options) -> str:
    """What starts the journey, as a sentence."""
    trigger = as_dict(trigger)
    kind = trigger.get("type")
    if kind == "event":
        return f"When {_quoted(trigger.get('event'))} is tracked"
    if kind in ("segment_entered", "segment_exited"):
        segment = trigger.get("segment_id")
        name = options.names.get(segment) if isinstance(segment, int) else None
        which = f"“{name}”" if name else (f"{segment} (missing)" if segment is not None else "(not chosen)")
        return f"When a profile {'enters' if kind == 'segment_entered' else 'leaves'} segment {which}"
    if kind == "date":
        days = trigger.get("days_before") or 0
        when = f"{plain(days)} day{'' if days == 1 else 's'} before" if days else "On"
        every = "each year" if trigger.get("annual") else "once"
        at = f" at {trigger.get('at')}" if trigger.get("at") else ""
        return f"{when} the date in trait {_quoted(trigger.get('trait'))}, {every}{at}"
    if kind == "api":
        return "When a profile is entered through the API"
    return "No trigger chosen yet"


def rule_sentence(rule: Any, options: Options, nested: bool = False) -> str:
    """A segment rule as one sentence: conditions joined by *and* / *or*."""
    kind = group_kind(rule)
    if kind:
        parts = [rule_sentence(child, options, True) for child in rule[kind]]
        if not parts:
            return "everyone" if kind == "all" else "no one"
        joined = (" and " if kind == "all" else " or ").join(parts)
        return f"({joined})" if nested and len(parts) > 1 else joined
    if is_not(rule):
        return f"not {rule_sentence(rule['not'], options, True)}"
    return condition_words(rule, options)


def _first_text(content: Any) -> str:
    content = as_dict(content)
    variants = as_dict(content.get("variants"))
    texts = as_dict(variants.get(content.get("fallback")) or next(iter(variants.values()), {}))
    ordered = [name for name in PREFERRED_FIELDS if name in texts] + sorted(texts)
    return next((str(texts[name]) for name in ordered if isinstance(texts[name], str) and texts[name]), "")


def _weight(value: Any) -> float:
    return value if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else 0


def split_shares(step: dict[str, Any]) -> tuple[list[float], float]:
    """Each path's share of the profiles reaching a split, and the hold-out's, in percent.

    Weights are relative: paths weighted 45 and 45 with a hold-out of 10 get 45% each.
    """
    weights = [_weight(as_dict(b).get("weight")) for b in as_list(step.get("branches"))]
    holdout = _weight(step.get("holdout"))
    total = sum(weights) + holdout
    if not total:
        return [0.0 for _ in weights], 0.0
    return [round(w / total * 100, 1) for w in weights], round(holdout / total * 100, 1)


def _pass_template_words(template: Any, options: Options) -> str:
    """Which wallet passes a pass step concerns: `` “Loyalty card”``, `` (template 7)`` or all (``""``)."""
    if template is None or template == "":
        return ""
    name = dict(pass_templates(options)).get(template) if isinstance(template, int) else None
    return f" “{name}”" if name else f" (template {plain(template)})"


def step_words(step: Any, options: Options) -> str:
    """What a step does, as a short sentence."""
    step = as_dict(step)
    kind = step.get("type")
    if kind == "send":
        channel = options.scope.channels.get(str(step.get("channel")))
        label = (
            channel.label
            if channel
            else (f"{step.get('channel')} (not enabled)" if step.get("channel") else "(no channel chosen)")
        )
        text = _first_text(step.get("content"))
        kind_of = "" if step.get("marketing", True) is not False else " (transactional)"
        return f"Send on {label}{kind_of}" + (f": “{_short(text)}”" if text else "")
    if kind == "wait":
        if step.get("until"):
            return f"Wait until {step.get('until')}"
        return f"Wait {duration_words(step.get('seconds'))}"
    if kind == "wait_for_event":
        return f"Wait up to {duration_words(step.get('timeout_seconds'))} for {_quoted(step.get('event'))}"
    if kind == "branch":
        return f"If {rule_sentence(step.get('rule'), options)}"
    if kind == "split":
        paths, holdout = split_shares(step)
        shares = " / ".join(f"{plain(s)}%" for s in paths)
        return f"Split {shares}" + (f", hold-out {plain(holdout)}%" if holdout else "")
    if kind == "update_trait":
        return f"Set trait {_quoted(step.get('trait'))} to {shown(step.get('value')) or '(empty text)'}"
    if kind == "assign_offer":
        offer = step.get("offer_id")
        name = dict(options.offers).get(offer) if isinstance(offer, int) else None
        if name:
            return f"Assign the offer {name}"
        return f"Assign offer {plain(offer)}" if offer else "Assign an offer (none chosen)"
    if kind == "update_pass":
        return "Update wallet pass" + _pass_template_words(step.get("template_id"), options)
    if kind == "notify_on_pass":
        text = str(step.get("message") or "").strip()
        said = f": “{_short(text)}”" if text else " (no message yet)"
        return "Notify on wallet pass" + _pass_template_words(step.get("template_id"), options) + said
    if kind == "exit":
        return "Exit the journey"
    return f"Unknown step type {kind!r}"


def lane_label(step: dict[str, Any], port: str) -> str:
    """The name of the path leaving a branching step through ``port``."""
    kind = step.get("type")
    if kind == "branch":
        return "Yes" if port == "yes" else "No"
    if kind == "wait_for_event":
        if port == "on_event":
            return f"“{step['event']}” happened" if step.get("event") else "The event happened"
        return f"Not within {duration_words(step.get('timeout_seconds'))}"
    if kind == "split" and port.startswith("branch:"):
        index = int(port.partition(":")[2])
        shares, _ = split_shares(step)
        branches = as_list(step.get("branches"))
        named = as_dict(branches[index]).get("label") if index < len(branches) else None
        name = str(named) if named else f"Path {string.ascii_uppercase[index % 26]}"
        return f"{name} · {plain(shares[index])}%" if index < len(shares) else name
    return port


def goal_words(goal: Any) -> str:
    """The journey's goal (what counts as converted), or that it has none."""
    goal = as_dict(goal)
    if not goal.get("event"):
        return "No goal"
    return f"Goal: {_quoted(goal.get('event'))} within {plain(goal.get('within_days'))} days"


def reentry_words(reentry: Any) -> str:
    """When a profile may enter the journey again."""
    reentry = as_dict(reentry)
    mode = str(reentry.get("mode", "never"))
    text = f"A profile enters {REENTRY.get(mode, mode)}"
    hours = reentry.get("cooldown_hours") or 0
    if hours and mode != "never":
        text += f", at most once every {plain(hours)} hour{'' if hours == 1 else 's'}"
    return text
