"""The campaign form: what was typed, read back into a campaign, with each problem placed by its input.

The form posts one fieldset per language: the language code as ``lang.<i>`` and each of the
channel's template fields as ``lang.<i>.<field>``; ``fallback`` is the index of the fallback
language. Every edit that changes the form's shape (another channel, a language added or removed)
posts the whole form back and the server renders it again, so nothing typed is lost.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from core.campaigns.models import Campaign
from core.campaigns.service import CampaignIn
from core.messages.personalization import TemplateInvalid

LANGUAGE_KEY = re.compile(r"lang\.(\d{1,2})")
MAX_LANGUAGES = 20


@dataclass
class Variant:
    """One language's texts as typed: the language code and the text of each field."""

    code: str = ""
    texts: dict[str, str] = field(default_factory=dict)


@dataclass
class CampaignForm:
    """Everything the campaign form holds, as text (so it shows again exactly as typed)."""

    name: str = ""
    segment_id: str = ""
    channel: str = ""
    variants: list[Variant] = field(default_factory=lambda: [Variant("en")])
    fallback: int = 0
    marketing: bool = True
    goal_event: str = ""
    goal_days: str = "7"
    schedule: str = "now"  # or "later"
    send_date: str = ""
    send_time: str = ""


@dataclass
class Problems:
    """What is wrong, by input (``name``, ``lang.0``, ``lang.0.body``...) and in general."""

    general: list[str] = field(default_factory=list)
    fields: dict[str, list[str]] = field(default_factory=dict)

    def add(self, key: str | None, message: str) -> None:
        """Note a problem of one input (``key``), or of the form as a whole (``None``)."""
        if key is None:
            self.general.append(message)
        else:
            self.fields.setdefault(key, []).append(message)

    def at(self, key: str) -> list[str]:
        """The problems of one input."""
        return self.fields.get(key, [])

    def merge(self, other: Problems) -> None:
        """Add another form check's problems to these."""
        self.general += other.general
        for key, messages in other.fields.items():
            self.fields.setdefault(key, []).extend(messages)

    def __bool__(self) -> bool:
        return bool(self.general or self.fields)


class FormInvalid(ValueError):
    """The form cannot become a campaign; ``problems`` says where and why."""

    def __init__(self, problems: Problems):
        self.problems = problems
        super().__init__("; ".join([*problems.general, *(m for ms in problems.fields.values() for m in ms)]))


def _text(form: Mapping[str, Any], key: str, default: str = "") -> str:
    value = form.get(key, default)
    return value if isinstance(value, str) else default


def read_form(form: Mapping[str, Any]) -> CampaignForm:
    """The form as posted (texts of any field name are kept; the channel decides which are shown)."""
    indexes = sorted({int(m.group(1)) for key in form if (m := LANGUAGE_KEY.fullmatch(str(key)))})
    variants = []
    for i in indexes[:MAX_LANGUAGES]:
        prefix = f"lang.{i}."
        texts = {
            str(k)[len(prefix) :]: v
            for k, v in form.items()
            if str(k).startswith(prefix) and isinstance(v, str)
        }
        variants.append(Variant(_text(form, f"lang.{i}").strip(), texts))
    fallback_text = _text(form, "fallback", "0")
    fallback = (
        indexes.index(int(fallback_text)) if fallback_text.isdigit() and int(fallback_text) in indexes else 0
    )
    return CampaignForm(
        name=_text(form, "name"), segment_id=_text(form, "segment_id"), channel=_text(form, "channel"),
        variants=variants or [Variant("en")], fallback=fallback, marketing=_text(form, "marketing") == "on",
        goal_event=_text(form, "goal_event"), goal_days=_text(form, "goal_days", "7"),
        schedule="later" if _text(form, "schedule") == "later" else "now",
        send_date=_text(form, "send_date"), send_time=_text(form, "send_time"),
    )  # fmt: skip


def apply_action(form: CampaignForm, action: str) -> CampaignForm:
    """The form after ``add_language`` or ``remove_language:<i>`` (anything else changes nothing)."""
    if action == "add_language" and len(form.variants) < MAX_LANGUAGES:
        form.variants.append(Variant())
    elif action.startswith("remove_language:") and len(form.variants) > 1:
        index = action.partition(":")[2]
        if index.isdigit() and int(index) < len(form.variants):
            removed = int(index)
            del form.variants[removed]
            if form.fallback == removed:
                form.fallback = 0
            elif form.fallback > removed:
                form.fallback -= 1
    return form


def from_campaign(campaign: Campaign, zone: str) -> CampaignForm:
    """The form filled with a saved campaign (its schedule in the tenant's zone)."""
    content = campaign.content or {}
    variants = [Variant(code, dict(texts)) for code, texts in (content.get("variants") or {}).items()]
    codes = [v.code for v in variants]
    fallback = content.get("fallback")
    send_date = send_time = ""
    if campaign.scheduled_at is not None:
        local = as_utc(campaign.scheduled_at).astimezone(ZoneInfo(zone))
        send_date, send_time = local.date().isoformat(), local.strftime("%H:%M")
    return CampaignForm(
        name=campaign.name, segment_id=str(campaign.segment_id), channel=campaign.channel,
        variants=variants or [Variant("en")], fallback=codes.index(fallback) if fallback in codes else 0,
        marketing=campaign.marketing, goal_event=campaign.goal_event or "", goal_days=str(campaign.goal_days),
        schedule="later" if campaign.scheduled_at else "now", send_date=send_date, send_time=send_time,
    )  # fmt: skip


def as_utc(moment: datetime) -> datetime:
    """A stored time as an aware UTC time (SQLite gives them back naive)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo("UTC"))


def _content(form: CampaignForm, fields: Iterable[str], problems: Problems) -> dict[str, Any]:
    names = list(fields)
    variants: dict[str, dict[str, str]] = {}
    for i, variant in enumerate(form.variants):
        if not variant.code:
            problems.add(f"lang.{i}", "Give the language code (en, fr, pt_BR...).")
        elif variant.code in variants:
            problems.add(f"lang.{i}", f"{variant.code} is there twice: one set of texts per language.")
        else:
            # An optional field left blank is no field at all (a required one is then reported missing).
            variants[variant.code] = {n: variant.texts[n] for n in names if variant.texts.get(n, "").strip()}
    fallback = form.variants[form.fallback].code if form.fallback < len(form.variants) else ""
    return {"variants": variants, "fallback": fallback}


def _schedule(form: CampaignForm, zone: str, now: datetime, problems: Problems) -> datetime | None:
    if form.schedule != "later":
        return None
    try:
        day, clock = date.fromisoformat(form.send_date.strip()), time.fromisoformat(form.send_time.strip())
    except ValueError:
        problems.add("schedule", "Give the date and the time to send at.")
        return None
    moment = datetime.combine(day, clock, ZoneInfo(zone))
    if moment <= now:
        problems.add("schedule", f"{day} {clock.strftime('%H:%M')} ({zone}) has passed: choose a later time.")
        return None
    return moment


def to_campaign_in(form: CampaignForm, fields: Iterable[str], zone: str, now: datetime) -> CampaignIn:
    """The campaign the form describes, with the channel's ``fields``; :class:`FormInvalid` otherwise.

    The texts' own problems (syntax, variables) are the service's to find: see :func:`template_problems`.
    """
    problems = Problems()
    content = _content(form, fields, problems)
    if not form.segment_id.isdigit():
        problems.add("segment_id", "Choose the segment to send to.")
    if not form.channel:
        problems.add("channel", "Choose a channel.")
    scheduled_at = _schedule(form, zone, now, problems)
    values = {
        "name": form.name.strip(), "segment_id": int(form.segment_id) if form.segment_id.isdigit() else 0,
        "channel": form.channel or "-", "content": content, "marketing": form.marketing,
        "goal_event": form.goal_event.strip() or None, "goal_days": form.goal_days.strip() or "7",
        "scheduled_at": scheduled_at,
    }  # fmt: skip
    try:
        data = CampaignIn.model_validate(values)
    except ValidationError as exc:
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else None
            problems.add(key, _readable(key, error["msg"]))
    if problems:
        raise FormInvalid(problems)
    return data


def _readable(key: str | None, message: str) -> str:
    if key == "name":
        return "Give the campaign a name (up to 200 characters)."
    if key == "goal_days":
        return "The goal's days are a whole number from 1 to 90."
    return message


def template_problems(exc: TemplateInvalid, form: CampaignForm) -> Problems:
    """The template's problems placed by the language and field they concern, with their line."""
    problems = Problems()
    codes = [v.code for v in form.variants]
    for p in exc.problems:
        message = f"line {p.line}: {p.message}" if p.line else p.message
        if p.language in codes:
            index = codes.index(p.language)
            problems.add(f"lang.{index}.{p.field}" if p.field else f"lang.{index}", message)
        else:
            problems.add(None, f"{p.field}: {message}" if p.field else message)
    return problems
