"""A journey's definition: the JSON marketers build, checked into typed models.

:func:`parse_definition` checks the shape (pydantic) and the structure (the start and every
reference exist, every loop passes through a wait). :func:`check_definition` adds what depends on
the tenant: send steps name an enabled channel and content valid for it, branch rules parse with
the tenant's segments and conditions, segment triggers name existing segments, offer steps name
an offer that is not archived, wallet pass steps name an existing pass template (or none: every
one) and a notice's text is valid personalization. Both raise :class:`DefinitionInvalid` listing
every problem as ``(path, message)``, the path pointing into the JSON
(``steps.s1.content.variants.en.body``) so the builder can show it in place.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Any, Literal

from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlmodel import Session, col, select

from core.loyalty.models import Offer, OfferStatus
from core.messages.content import check_content
from core.messages.personalization import MessageTemplate, TemplateInvalid, check_template
from core.passes.models import PassTemplate
from core.passes.notices import MAX_NOTICE
from core.segments import rules as r
from core.segments.models import Segment
from core.segments.service import TenantScope

STEP_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
CLOCK = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
MAX_STEPS = 200
MAX_WAIT_SECONDS = 400 * 86_400
# What a notice on a pass cannot read: it is put on the pass without the event that entered the profile.
NOT_IN_NOTICES = frozenset({"event"})
_NOTICE_PARSER = SandboxedEnvironment()


class DefinitionInvalid(ValueError):
    """The definition cannot be used; ``problems`` lists ``(path, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{path}: {message}" if path else message for path, message in problems))


def clock_time(text: str) -> time:
    """``HH:MM`` as a time of day."""
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _clock(value: str) -> str:
    if not CLOCK.match(value):
        raise ValueError("give a time of day as HH:MM (24 hours), e.g. 09:00")
    return value


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- triggers -------------------------------------------------------------------------------------
class EventTrigger(_Shape):
    """Enter when the profile performs a track event."""

    type: Literal["event"]
    event: str = Field(min_length=1, max_length=500)


class SegmentTrigger(_Shape):
    """Enter when the profile enters (or exits) a segment."""

    type: Literal["segment_entered", "segment_exited"]
    segment_id: int


class DateTrigger(_Shape):
    """Enter on a date trait: each year on its month and day (``annual``), or on the date itself."""

    type: Literal["date"]
    trait: str = Field(min_length=1, max_length=200)
    annual: bool = True
    days_before: int = Field(default=0, ge=0, le=366)
    at: str = "09:00"

    _at = field_validator("at")(_clock)


class ApiTrigger(_Shape):
    """Enter when a script asks (``POST /api/v1/journeys/{id}/entries``)."""

    type: Literal["api"]


Trigger = Annotated[EventTrigger | SegmentTrigger | DateTrigger | ApiTrigger, Field(discriminator="type")]


# --- steps ------------------------------------------------------------------------------------------
class _Step(_Shape):
    label: str | None = Field(default=None, max_length=200)

    def targets(self) -> dict[str, str | None]:
        """The steps this one leads to, by the name of the field that says so."""
        return {}

    @property
    def waits(self) -> bool:
        """Whether an entry stops here until some time passes or an event comes."""
        return False


class SendStep(_Step):
    """Send a message on a channel (``content``: a message template of the channel's fields)."""

    type: Literal["send"]
    channel: str = Field(min_length=1, max_length=100)
    content: dict[str, Any]
    marketing: bool = True
    next: str | None = None

    def targets(self) -> dict[str, str | None]:
        return {"next": self.next}


class WaitStep(_Step):
    """Wait a duration (``seconds``), or ``until`` the next such local time of day."""

    type: Literal["wait"]
    seconds: int | None = Field(default=None, ge=1, le=MAX_WAIT_SECONDS)
    until: str | None = None
    next: str | None = None

    _until = field_validator("until")(lambda value: value if value is None else _clock(value))

    @model_validator(mode="after")
    def _one_of(self) -> WaitStep:
        if (self.seconds is None) == (self.until is None):
            raise ValueError("give either seconds or until")
        return self

    def targets(self) -> dict[str, str | None]:
        return {"next": self.next}

    @property
    def waits(self) -> bool:
        return True


class WaitForEventStep(_Step):
    """Wait for the profile's next ``event``, at most ``timeout_seconds``."""

    type: Literal["wait_for_event"]
    event: str = Field(min_length=1, max_length=500)
    timeout_seconds: int = Field(ge=1, le=MAX_WAIT_SECONDS)
    on_event: str | None = None
    on_timeout: str | None = None

    def targets(self) -> dict[str, str | None]:
        return {"on_event": self.on_event, "on_timeout": self.on_timeout}

    @property
    def waits(self) -> bool:
        return True


class BranchStep(_Step):
    """Go ``yes`` or ``no`` by a segment rule evaluated for the profile at that moment."""

    type: Literal["branch"]
    rule: dict[str, Any]
    yes: str | None = None
    no: str | None = None

    def targets(self) -> dict[str, str | None]:
        return {"yes": self.yes, "no": self.no}


class SplitBranch(_Shape):
    """One way of a split, taken by a share of entries proportional to its ``weight``."""

    weight: float = Field(gt=0, le=1_000_000)
    next: str | None = None
    label: str | None = Field(default=None, max_length=200)


class SplitStep(_Step):
    """Send entries down branches at random by weight; ``holdout`` is the weight of a group that
    exits here (a control group: its conversions still count)."""

    type: Literal["split"]
    branches: list[SplitBranch] = Field(min_length=1, max_length=20)
    holdout: float = Field(default=0, ge=0, le=1_000_000)

    def targets(self) -> dict[str, str | None]:
        return {f"branches[{i}].next": branch.next for i, branch in enumerate(self.branches)}


class UpdateTraitStep(_Step):
    """Set a trait on the profile."""

    type: Literal["update_trait"]
    trait: str = Field(min_length=1, max_length=200)
    value: Any = None
    next: str | None = None

    @field_validator("trait")
    @classmethod
    def _not_consent(cls, value: str) -> str:
        if value == "consent":
            raise ValueError("consent is not a trait: it is recorded per channel and purpose")
        return value

    def targets(self) -> dict[str, str | None]:
        return {"next": self.next}


class AssignOfferStep(_Step):
    """Assign a loyalty offer to the profile (each profile gets one coupon per offer)."""

    type: Literal["assign_offer"]
    offer_id: int = Field(ge=1)
    next: str | None = None

    def targets(self) -> dict[str, str | None]:
        return {"next": self.next}


class UpdatePassStep(_Step):
    """Bring the profile's live wallet passes up to date now (of one template; ``None``: every one)."""

    type: Literal["update_pass"]
    template_id: int | None = Field(default=None, ge=1)
    next: str | None = None

    def targets(self) -> dict[str, str | None]:
        return {"next": self.next}


class NotifyOnPassStep(_Step):
    """Put a personalized message on the lock screen of the profile's live wallet passes (of one
    template; ``None``: every one)."""

    type: Literal["notify_on_pass"]
    template_id: int | None = Field(default=None, ge=1)
    message: str = Field(max_length=MAX_NOTICE)
    next: str | None = None

    @field_validator("message")
    @classmethod
    def _written(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("write the message the pass shows, e.g. Hi {{ traits.first_name }}")
        return value

    def targets(self) -> dict[str, str | None]:
        return {"next": self.next}


class ExitStep(_Step):
    """Leave the journey here."""

    type: Literal["exit"]


Step = Annotated[
    SendStep
    | WaitStep
    | WaitForEventStep
    | BranchStep
    | SplitStep
    | UpdateTraitStep
    | AssignOfferStep
    | UpdatePassStep
    | NotifyOnPassStep
    | ExitStep,
    Field(discriminator="type"),
]
STEP_TYPES = ("send", "wait", "wait_for_event", "branch", "split", "update_trait", "assign_offer", "update_pass",
              "notify_on_pass", "exit")  # fmt: skip
PASS_STEPS = (UpdatePassStep, NotifyOnPassStep)


class Goal(_Shape):
    """The event that counts as success, within ``within_days`` of entering."""

    event: str = Field(min_length=1, max_length=500)
    within_days: int = Field(default=14, ge=1, le=365)


class Reentry(_Shape):
    """Whether a profile may enter again: ``never``, ``after_exit`` (not while in), ``always``;
    and not within ``cooldown_hours`` of its last entry."""

    mode: Literal["never", "after_exit", "always"] = "never"
    cooldown_hours: int = Field(default=0, ge=0, le=24 * 366)


class Definition(_Shape):
    """A whole journey."""

    trigger: Trigger
    start: str
    steps: dict[str, Step] = Field(min_length=1, max_length=MAX_STEPS)
    goal: Goal | None = None
    reentry: Reentry = Field(default_factory=Reentry)

    def step_names(self) -> list[str]:
        """The step keys, in the order they are written."""
        return list(self.steps)


# --- checking ---------------------------------------------------------------------------------
def _path(loc: tuple[Any, ...], data: Any) -> str:
    """A pydantic error location as a path into the JSON, without the union's type tags."""
    parts = [str(p) for p in loc]
    if len(parts) >= 3 and parts[0] == "steps" and parts[2] in STEP_TYPES:
        del parts[2]
    elif len(parts) >= 2 and parts[0] == "trigger" and parts[1] in {"event", "segment_entered",
                                                                   "segment_exited", "date", "api"}:  # fmt: skip
        del parts[1]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


def parse_definition(data: Any) -> Definition:
    """The typed definition; :class:`DefinitionInvalid` for a wrong shape or structure."""
    definition = _shape(data)
    problems = _structure(definition)
    if problems:
        raise DefinitionInvalid(problems)
    return definition


def _shape(data: Any) -> Definition:
    try:
        definition = Definition.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append((_path(tuple(error["loc"]), data), message))
        raise DefinitionInvalid(problems) from exc
    return definition


def _structure(definition: Definition) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    steps = definition.steps
    for key in steps:
        if not STEP_KEY.match(key):
            problems.append((f"steps.{key}", "a step key has 1-100 letters, digits, _ . : or -"))
    if definition.start not in steps:
        problems.append(("start", f"there is no step {definition.start!r}"))
    for key, step in steps.items():
        for name, target in step.targets().items():
            if target is not None and target not in steps:
                problems.append((f"steps.{key}.{name}", f"there is no step {target!r}"))
    loop = _loop_without_wait(definition)
    if loop:
        problems.append((f"steps.{loop[0]}", f"this loop has no wait: {' → '.join(loop)}"))
    return problems


def _loop_without_wait(definition: Definition) -> list[str] | None:
    """A cycle among steps that do not wait (an entry would go round it at once forever), if any."""
    steps = definition.steps
    edges = {
        key: [t for t in step.targets().values() if t in steps and not steps[t].waits]
        for key, step in steps.items()
        if not step.waits
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(key: str) -> list[str] | None:
        state[key] = 1
        path.append(key)
        for target in edges.get(key, []):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[key] = 2
        return None

    for key in edges:
        if key not in state:
            found = visit(key)
            if found:
                return found
    return None


def check_definition(session: Session, scope: TenantScope, data: Any) -> Definition:
    """The typed definition, checked against the tenant too; :class:`DefinitionInvalid` if not."""
    definition = _shape(data)
    problems = _structure(definition)
    segments = {s.id: s.rule for s in session.exec(select(Segment).where(col(Segment.archived_at).is_(None)))}
    trigger = definition.trigger
    if isinstance(trigger, SegmentTrigger) and trigger.segment_id not in segments:
        problems.append(("trigger.segment_id", f"there is no segment {trigger.segment_id}"))
    context = r.RuleContext(segment_rule=segments.get, conditions=scope.conditions)
    wanted = {s.offer_id for s in definition.steps.values() if isinstance(s, AssignOfferStep)}
    offers = {o.id: o for o in session.exec(select(Offer).where(col(Offer.id).in_(wanted)))} if wanted else {}
    templates = _pass_templates(session, definition)
    for key, step in definition.steps.items():
        if isinstance(step, SendStep):
            problems.extend(_send_problems(scope, key, step))
        elif isinstance(step, AssignOfferStep):
            offer = offers.get(step.offer_id)
            if offer is None:
                problems.append((f"steps.{key}.offer_id", f"there is no offer {step.offer_id}"))
            elif offer.status == OfferStatus.archived:
                problems.append((f"steps.{key}.offer_id", f"offer {offer.name!r} is archived"))
        elif isinstance(step, PASS_STEPS):
            if step.template_id is not None and step.template_id not in templates:
                problems.append((f"steps.{key}.template_id", f"there is no pass template {step.template_id}"))
            if isinstance(step, NotifyOnPassStep):
                problems.extend(_notice_problems(key, step))
        elif isinstance(step, BranchStep):
            try:
                r.parse_rule(step.rule, context)
            except r.RuleError as exc:
                for p in exc.problems:
                    problems.append((f"steps.{key}.rule" + (f".{p.path}" if p.path else ""), p.message))
    if problems:
        raise DefinitionInvalid(problems)
    return definition


def _pass_templates(session: Session, definition: Definition) -> set[int]:
    """The ids of the pass templates the definition's pass steps name that exist (archived or not)."""
    wanted = {s.template_id for s in definition.steps.values() if isinstance(s, PASS_STEPS)} - {None}
    if not wanted:
        return set()
    return {t for t in session.exec(select(PassTemplate.id).where(col(PassTemplate.id).in_(wanted))) if t}


def _notice_problems(key: str, step: NotifyOnPassStep) -> list[tuple[str, str]]:
    """What is wrong with a notice's text as personalization (syntax, unknown or unavailable variables)."""
    path = f"steps.{key}.message"
    try:
        check_template(MessageTemplate(variants={"en": {"message": step.message}}, fallback="en"))
    except TemplateInvalid as exc:
        return [(path, f"line {p.line}: {p.message}" if p.line else p.message) for p in exc.problems]
    used = meta.find_undeclared_variables(_NOTICE_PARSER.parse(step.message)) & NOT_IN_NOTICES
    if used:
        return [(path, "a pass notice cannot read event: use traits, computed, loyalty or profile")]
    return []


def _send_problems(scope: TenantScope, key: str, step: SendStep) -> list[tuple[str, str]]:
    channel = scope.channels.get(step.channel)
    if channel is None:
        enabled = ", ".join(sorted(scope.channels)) or "none"
        return [(f"steps.{key}.channel", f"channel {step.channel!r} is not enabled (enabled: {enabled})")]
    try:
        check_content(channel, step.content)
    except TemplateInvalid as exc:
        problems = []
        for p in exc.problems:
            where = ".".join(part for part in (f"steps.{key}.content", "variants" if p.language else "",
                                               p.language, p.field) if part)  # fmt: skip
            problems.append((where, f"line {p.line}: {p.message}" if p.line else p.message))
        return problems
    return []
