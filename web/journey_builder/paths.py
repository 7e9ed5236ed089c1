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
    "exit": "exited",
    "goal": "reached the goal",
}
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


def outcome_words(outcome: str) -> str:
    """A visit's outcome in words (``suppressed:no_consent`` → ``suppressed (no consent)``)."""
    if outcome in OUTCOMES:
        return OUTCOMES[outcome]
    head, colon, reason = outcome.partition(":")
    if colon:
        return f"{head} ({reason.replace('_', ' ')})"
    if outcome.startswith("branch "):
        return f"took path {outcome.removeprefix('branch ')}"
    return outcome.replace("_", " ")


def path_views(paths: Iterable[Any]) -> list[dict[str, Any]]:
    """Each pass (``ProfilePath``: journey, entry, visits) as the card shows it, newest first as given."""
    views = []
    for path in paths:
        journey, entry = path.journey, path.entry
        steps = steps_of(journey.definition)
        visits = [{"step": v.step, "title": step_title(steps[v.step]) if v.step in steps else v.step,
                   "outcome": outcome_words(v.outcome), "at": v.at} for v in path.visits]  # fmt: skip
        state = str(entry.state)
        views.append({"journey": journey, "state": STATES.get(state, state), "badge": BADGES.get(state, ""),
                      "entered_at": entry.entered_at, "ended_at": entry.ended_at,
                      "converted_at": entry.converted_at, "visits": visits})  # fmt: skip
    return views
