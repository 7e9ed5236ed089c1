"""A profile's passes through journeys, for the "Journeys" card of its 360 view."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from web.journey_builder.flow import step_title
from web.journey_builder.graph import steps_of

OUTCOMES = {
    "sent": "sent",
    "waiting": "waiting",
    "waited": "waited",
    "event": "the event came",
    "timeout": "timed out",
    "yes": "yes",
    "no": "no",
    "holdout": "held out",
    "updated": "trait set",
    "assigned": "offer assigned",
    "notified": "message put on the wallet pass",
    "exit": "exited",
    "goal": "reached the goal",
}
# Outcomes that mean something else for some step types: (type, outcome) → words.
STEP_OUTCOMES = {("update_pass", "updated"): "wallet pass updated"}
STATES = {"active": "in it", "waiting": "in it (waiting)", "completed": "completed", "exited": "exited",
          "converted": "converted", "holdout": "held out"}  # fmt: skip
BADGES = {
    "active": "ok",
    "waiting": "ok",
    "converted": "ok",
    "holdout": "warn",
    "exited": "",
    "completed": "",
}


def outcome_words(outcome: str, kind: str = "") -> str:
    """A visit's outcome at a step of type ``kind``, in words (``suppressed:no_consent`` →
    ``suppressed (no consent)``)."""
    if (kind, outcome) in STEP_OUTCOMES:
        return STEP_OUTCOMES[(kind, outcome)]
    if outcome in OUTCOMES:
        return OUTCOMES[outcome]
    head, colon, reason = outcome.partition(":")
    if colon:
        return f"{head} ({reason.replace('_', ' ')})"
    if outcome.startswith("branch "):
        return f"took path {outcome.removeprefix('branch ')}"
    return outcome.replace("_", " ")


def _type_of(step: Any) -> str:
    return str(step.get("type", "")) if isinstance(step, dict) else ""


def path_views(paths: Iterable[Any]) -> list[dict[str, Any]]:
    """Each pass (``ProfilePath``: journey, entry, visits) as the card shows it, newest first as given."""
    views = []
    for path in paths:
        journey, entry = path.journey, path.entry
        steps = steps_of(journey.definition)
        visits = [{"step": v.step, "title": step_title(steps[v.step]) if v.step in steps else v.step,
                   "outcome": outcome_words(v.outcome, _type_of(steps.get(v.step))), "at": v.at}
                  for v in path.visits]  # fmt: skip
        state = str(entry.state)
        views.append({"journey": journey, "state": STATES.get(state, state), "badge": BADGES.get(state, ""),
                      "entered_at": entry.entered_at, "ended_at": entry.ended_at,
                      "converted_at": entry.converted_at, "visits": visits})  # fmt: skip
    return views
