"""What a pass's texts read for each profile: the personalization context, loyalty included.

A loyalty card is often a customer's first contact with the program, so someone who is not a
member yet reads as a member with nothing: ``{{ loyalty.club.balance }}`` is 0 on their card
rather than a missing value.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy.engine import Connection

from core.delivery.recipients import load_recipients
from core.loyalty.standing import present, program_starts


def pass_contexts(connection: Connection, profile_ids: Collection[str]) -> dict[str, dict[str, Any]]:
    """The context of each live profile among ``profile_ids`` (merged-away and erased ones are left out)."""
    people = load_recipients(connection, profile_ids, "", None)
    starts = program_starts(connection) if people else []
    contexts = {}
    for profile_id, person in people.items():
        context = person.context()
        # A trait set to null has no value: the pass must say so, never show "None".
        context["traits"] = {name: value for name, value in context["traits"].items() if value is not None}
        loyalty = dict(context["loyalty"])
        for start in starts:
            loyalty.setdefault(start.program_key, present(start))
        if starts and "key" not in loyalty:  # a member of no program: the first one at the top too
            loyalty.update(present(starts[0]))
        context["loyalty"] = loyalty
        contexts[profile_id] = context
    return contexts
