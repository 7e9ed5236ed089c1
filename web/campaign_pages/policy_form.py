"""The sending-policy settings form: the tenant's :class:`~core.messages.policy.Policy` as text inputs.

Inputs: ``overall.messages`` / ``overall.hours`` (the cap over all channels), per channel
``cap.<key>.messages`` / ``cap.<key>.hours`` and ``rate.<key>`` (sends per second),
``quiet.start`` / ``quiet.end`` (HH:MM) and ``tenant_rate``. A blank pair means no cap, blank
quiet hours no quiet hours, a blank rate no limit of ours.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from core.messages.policy import Policy


@dataclass
class PolicyForm:
    """What the form shows (as typed) and what is wrong, by input name."""

    values: dict[str, str]
    problems: dict[str, str] = field(default_factory=dict)


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


def form_of(policy: Policy, channels: Iterable[str]) -> PolicyForm:
    """The form filled with a saved policy, with a row for each of ``channels``."""
    values = {"tenant_rate": _number(policy.tenant_rate)}
    if policy.overall_cap is not None:
        values.update(
            {
                "overall.messages": str(policy.overall_cap.messages),
                "overall.hours": str(policy.overall_cap.hours),
            }
        )
    for key in channels:
        cap = policy.channel_caps.get(key)
        values[f"cap.{key}.messages"] = str(cap.messages) if cap else ""
        values[f"cap.{key}.hours"] = str(cap.hours) if cap else ""
        values[f"rate.{key}"] = _number(policy.channel_rates.get(key))
    if policy.quiet_hours is not None:
        values["quiet.start"] = policy.quiet_hours.start.strftime("%H:%M")
        values["quiet.end"] = policy.quiet_hours.end.strftime("%H:%M")
    return PolicyForm(values)


def _whole(text: str, name: str, problems: dict[str, str]) -> int | None:
    if not text.isdigit():
        problems[name] = "A whole number."
        return None
    return int(text)


def _cap(values: Mapping[str, str], prefix: str, problems: dict[str, str]) -> dict[str, int] | None:
    messages, hours = values.get(f"{prefix}.messages", ""), values.get(f"{prefix}.hours", "")
    if not messages and not hours:
        return None
    if not messages or not hours:
        problems[f"{prefix}.{'hours' if messages else 'messages'}"] = "Give both: N messages per H hours."
        return None
    count, period = (
        _whole(messages, f"{prefix}.messages", problems),
        _whole(hours, f"{prefix}.hours", problems),
    )
    return {"messages": count, "hours": period} if count is not None and period is not None else None


def _rate(text: str, name: str, problems: dict[str, str]) -> float | None:
    if not text:
        return None
    try:
        rate = float(text)
    except ValueError:
        problems[name] = "A number of sends per second, such as 50 or 0.5."
        return None
    if not 0 < rate <= 1_000_000:
        problems[name] = "More than 0 sends per second (leave it blank for no limit)."
        return None
    return rate


def read_policy(form: Mapping[str, Any], channels: Iterable[str]) -> tuple[Policy | None, PolicyForm]:
    """The policy the form describes (None when something is wrong) and the form to show again."""
    keys = list(channels)
    names = ["tenant_rate", "overall.messages", "overall.hours", "quiet.start", "quiet.end"]
    names += [
        f"{kind}.{k}{part}"
        for k in keys
        for kind, part in (("cap", ".messages"), ("cap", ".hours"), ("rate", ""))
    ]
    values = {name: str(form.get(name) or "").strip() for name in names}
    problems: dict[str, str] = {}
    data: dict[str, Any] = {
        "overall_cap": _cap(values, "overall", problems),
        "channel_caps": {},
        "channel_rates": {},
        "tenant_rate": _rate(values["tenant_rate"], "tenant_rate", problems),
    }
    for key in keys:
        cap, rate = (
            _cap(values, f"cap.{key}", problems),
            _rate(values[f"rate.{key}"], f"rate.{key}", problems),
        )
        if cap is not None:
            data["channel_caps"][key] = cap
        if rate is not None:
            data["channel_rates"][key] = rate
    start, end = values["quiet.start"], values["quiet.end"]
    if start or end:
        if not start or not end:
            problems["quiet.end" if start else "quiet.start"] = (
                "Give both the start and the end of the quiet hours."
            )
        else:
            data["quiet_hours"] = {"start": start, "end": end}
    if not problems:
        try:
            return Policy.model_validate(data), PolicyForm(values)
        except ValidationError as exc:
            for error in exc.errors():
                problems[_input_of(error["loc"])] = error["msg"]
    return None, PolicyForm(values, problems)


def _input_of(loc: tuple[Any, ...]) -> str:
    """The form input a validation error of the policy is about."""
    parts = [str(p) for p in loc]
    if parts[:1] == ["overall_cap"] and len(parts) > 1:
        return f"overall.{parts[1]}"
    if parts[:1] == ["channel_caps"] and len(parts) > 2:
        return f"cap.{parts[1]}.{parts[2]}"
    if parts[:1] == ["quiet_hours"] and len(parts) > 1:
        return f"quiet.{parts[1]}"
    if parts[:1] == ["channel_rates"] and len(parts) > 1:
        return f"rate.{parts[1]}"
    return parts[0] if parts else "tenant_rate"
