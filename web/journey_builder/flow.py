"""The journey drawn as a flow: the definition's graph turned into rows and side-by-side lanes.

From the start, each step is a box under the previous one; a step with several ways out (branch,
wait for event, split) ends its column with one lane per way out, side by side, and each lane goes
on downwards. A step reached a second time (paths joining, loops) is drawn once: later arrivals
show a "continues at" box. Every connector is a place to add a step: a box records the connector
it hangs from (``source``, ``port``). Steps nothing leads to are listed apart, to link or delete.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from web.journey_builder.graph import START, STEP_TYPES, ports, removed_with, steps_of
from web.journey_builder.words import lane_label, split_shares, step_words
from web.segment_builder.options import Options
from web.segment_builder.tree import as_dict

PATH_INDEX = re.compile(r"branches\[(\d+)\]")
GENERAL = ""  # problems that concern no box in particular
SPOKEN = {"content": "", "variants": "", "seconds": "duration", "timeout_seconds": "timeout", "_": " "}


@dataclass
class Lane:
    """One way out of a branching step and the boxes down it."""

    port: str
    label: str
    boxes: list[Box]


@dataclass
class Box:
    """One box of the drawing.

    ``kind`` is ``step``, ``end`` (the journey ends here), ``jump`` (continues at a step drawn
    elsewhere) or ``missing`` (leads to a step that does not exist). ``source`` and ``port`` name
    the connector above the box (None for a step nothing leads to).
    """

    kind: str
    source: str | None
    port: str | None
    key: str | None = None
    type: str = ""
    title: str = ""
    words: str = ""
    problems: list[str] = field(default_factory=list)
    lanes: list[Lane] = field(default_factory=list)
    holdout: float = 0  # a split's hold-out share, in percent
    entered: int | None = None
    here_now: int | None = None
    report: Any = None
    removes: int = 0

    @property
    def id(self) -> str:
        """The box's HTML id."""
        if self.kind == "step":
            return f"step-{self.key}"
        return f"{self.kind}-{self.source}-{(self.port or '').replace(':', '-')}"


@dataclass
class Flow:
    """The drawing: the boxes under the trigger, and the steps nothing leads to."""

    boxes: list[Box]
    unlinked: list[list[Box]]
    order: list[str]  # step keys in drawing order


def _spoken(rest: str) -> str:
    rest = PATH_INDEX.sub(lambda m: f"path {string.ascii_uppercase[int(m.group(1)) % 26]}", rest)
    words = [SPOKEN.get(part, part) for part in rest.split(".")]
    return " ".join(w for w in words if w).replace("_", " ")


def problems_by_box(problems: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Problem messages by the box they concern: a step's key, ``trigger``, ``settings`` or :data:`GENERAL`.

    Paths look like ``steps.s3.content.en.body``, ``trigger.event``, ``goal.within_days``.
    """
    found: dict[str, list[str]] = {}
    for path, message in problems:
        head, _, rest = path.partition(".")
        if head == "steps" and rest:
            box, _, rest = rest.partition(".")
        elif head in ("trigger", "start"):
            box, rest = "trigger", rest if head == "trigger" else ""
        elif head in ("goal", "reentry"):
            box = "settings"
        else:
            box, rest = GENERAL, path
        text = f"{_spoken(rest)}: {message}" if rest and box != GENERAL else message
        if box == GENERAL and path not in ("", "steps"):
            text = f"{path}: {message}"
        found.setdefault(box, []).append(text)
    return found


def step_title(step: Any) -> str:
    """A step's label, or the name of its type."""
    step = as_dict(step)
    kind = str(step.get("type", ""))
    return str(step.get("label") or STEP_TYPES.get(kind, kind or "Step"))


class _Layout:
    def __init__(
        self,
        definition: dict[str, Any],
        options: Options,
        problems: Mapping[str, list[str]],
        counts: Mapping[str, Any],
        reports: Mapping[str, Any],
    ) -> None:
        self.definition, self.steps, self.options = definition, steps_of(definition), options
        self.problems, self.counts, self.reports = problems, counts, reports
        self.seen: list[str] = []

    def box(self, key: str, source: str | None, port: str | None) -> Box:
        step = as_dict(self.steps[key])
        kind = str(step.get("type", ""))
        count = self.counts.get(key)
        return Box(
            kind="step", source=source, port=port, key=key, type=kind, title=step_title(step),
            words=step_words(step, self.options), problems=list(self.problems.get(key, [])),
            holdout=split_shares(step)[1] if kind == "split" else 0,
            entered=getattr(count, "entered", None), here_now=getattr(count, "here_now", None),
            report=self.reports.get(key), removes=removed_with(self.definition, key),
        )  # fmt: skip

    def chain(self, source: str | None, port: str | None, to: str | None) -> list[Box]:
        boxes: list[Box] = []
        while True:
            if to is None:
                boxes.append(Box(kind="end", source=source, port=port, title="End"))
                return boxes
            if to not in self.steps:
                boxes.append(Box(kind="missing", source=source, port=port, key=to, title="Missing step",
                                 words=f"Leads to step {to!r}, which does not exist"))  # fmt: skip
                return boxes
            if to in self.seen:
                boxes.append(Box(kind="jump", source=source, port=port, key=to, title="Continues at",
                                 words=step_title(self.steps[to])))  # fmt: skip
                return boxes
            self.seen.append(to)
            box = self.box(to, source, port)
            boxes.append(box)
            outs = ports(self.steps[to])
            if [p for p, _ in outs] == ["next"]:
                source, port, to = to, "next", outs[0][1]
                continue
            step = as_dict(self.steps[to])
            box.lanes = [Lane(p, lane_label(step, p), self.chain(box.key, p, t)) for p, t in outs]
            return boxes


def layout(
    definition: dict[str, Any],
    options: Options,
    problems: Mapping[str, list[str]] | None = None,
    counts: Mapping[str, Any] | None = None,
    reports: Mapping[str, Any] | None = None,
) -> Flow:
    """The drawing of ``definition``, with each step's problems, counts (``step_counts``) and report."""
    drawing = _Layout(definition, options, problems or {}, counts or {}, reports or {})
    start = definition.get("start")
    boxes = drawing.chain(START, "start", start if isinstance(start, str) and start else None)
    order = list(drawing.seen)
    unlinked = []
    for key in list(drawing.steps):
        if key not in drawing.seen:
            unlinked.append(drawing.chain(None, None, key))
    return Flow(boxes, unlinked, order)
