"""Personalized message content: sandboxed Jinja2 per language, with missing values caught early.

A :class:`MessageTemplate` holds, per language, the texts of a message's fields (a title, a body, a
pass's back field...) written in Jinja2, and a fallback language. For one profile:

- the language is the profile's locale negotiated against the template's languages (``fr_CA``
  takes ``fr`` when there is no ``fr_CA``), else the fallback;
- the texts render in a sandbox (no attribute tricks, no access to Python internals) over the
  profile's traits, computed traits, loyalty data and the event that triggered the send;
- a variable without a value is an error, never a blank: :func:`missing_values` lists, before a
  launch or in a preview, which profiles would lack which value.

Syntax errors are found when the template is saved (:func:`check_template`), with the language,
the field and the line.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from babel import Locale, UnknownLocaleError
from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_TEXT = 20_000
# What a template may read; anything else is an unknown variable.
NAMESPACES = ("profile", "traits", "computed", "loyalty", "event", "wallet")


class _Environment(SandboxedEnvironment):
    """The sandbox, its globals (``range``, ``namespace``...) copied into each template as a dict.

    Jinja2 chains them (a ``ChainMap``), which every render walks to make its context: most of
    the cost of rendering a campaign's messages. Nothing changes them once set up.
    """

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """The template's globals over the environment's, as one plain dict."""
        return {**self.globals, **(d or {})}


_ENVIRONMENT = _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


class MessageTemplate(BaseModel):
    """Texts per language (``{"en": {"body": "Hi {{ traits.first_name }}"}}``) and the fallback language."""

    model_config = ConfigDict(extra="forbid")

    variants: dict[str, dict[str, str]] = Field(min_length=1)
    fallback: str

    @model_validator(mode="after")
    def _fallback_is_a_variant(self) -> MessageTemplate:
        if self.fallback not in self.variants:
            raise ValueError(f"the fallback language {self.fallback!r} has no texts")
        return self


@dataclass(frozen=True)
class TemplateProblem:
    """Something wrong in one field of one language's texts."""

    language: str
    field: str
    message: str
    line: int | None = None


class TemplateInvalid(ValueError):
    """The template cannot be used; ``problems`` says where and why."""

    def __init__(self, problems: list[TemplateProblem]):
        self.problems = problems
        super().__init__("; ".join(f"{p.language}.{p.field}: {p.message}" for p in problems))


class MissingValue(LookupError):
    """A variable the template uses has no value for this profile."""

    def __init__(self, name: str, language: str, field: str):
        self.name, self.language, self.field = name, language, field
        super().__init__(f"{name} has no value ({language}, {field})")


@lru_cache(maxsize=512)
def _compiled(text: str) -> Callable[[Mapping[str, Any]], str]:
    """``text`` as a function of a context (raising Jinja2's errors as they come)."""
    if "{" not in text and "\r" not in text:  # no Jinja2 in it: it renders as itself
        return lambda context: text
    return _ENVIRONMENT.from_string(text).render


def check_template(template: MessageTemplate) -> None:
    """Raise :class:`TemplateInvalid` for syntax errors, unknown languages, texts too long, or
    variables outside the namespaces a message can read (``traits``, ``computed``, ...)."""
    problems: list[TemplateProblem] = []
    for language, fields in sorted(template.variants.items()):
        try:
            Locale.parse(language)
        except (ValueError, UnknownLocaleError):
            problems.append(
                TemplateProblem(language, "", f"{language!r} is not a language code such as en or pt_BR")
            )
        for name, text in sorted(fields.items()):
            if len(text) > MAX_TEXT:
                problems.append(TemplateProblem(language, name, f"longer than {MAX_TEXT} characters"))
                continue
            try:
                parsed = _ENVIRONMENT.parse(text)
            except TemplateSyntaxError as exc:
                problems.append(TemplateProblem(language, name, exc.message or "syntax error", exc.lineno))
                continue
            unknown = sorted(meta.find_undeclared_variables(parsed) - set(NAMESPACES))
            if unknown:
                problems.append(TemplateProblem(
                    language, name, f"unknown variable(s) {', '.join(unknown)}; use {', '.join(NAMESPACES)}"))  # fmt: skip
    if problems:
        raise TemplateInvalid(problems)


def choose_language(template: MessageTemplate, locale: str | None) -> str:
    """The template's language for a profile's locale (``fr_CA`` → ``fr``), else the fallback."""
    return _negotiated(tuple(template.variants), template.fallback, locale)


@lru_cache(maxsize=4096)
def _negotiated(languages: tuple[str, ...], fallback: str, locale: str | None) -> str:
    # Cached: a send asks this for every recipient, with a handful of distinct locales.
    if locale:
        wanted = locale.replace("-", "_")
        try:
            chosen = Locale.negotiate([wanted], list(languages), sep="_")
        except (ValueError, UnknownLocaleError):
            chosen = None
        if chosen is not None:
            return next((v for v in languages if v.lower() == str(chosen).lower()), fallback)
        # A region-less locale ("pt") still takes a regional variant ("pt_BR") when it is the only one.
        language = wanted.split("_")[0].lower()
        regional = [v for v in languages if v.split("_")[0].lower() == language]
        if len(regional) == 1:
            return regional[0]
    return fallback


def message_context(
    traits: Mapping[str, Any],
    computed: Mapping[str, Any] | None = None,
    loyalty: Mapping[str, Any] | None = None,
    event: Mapping[str, Any] | None = None,
    profile: Mapping[str, Any] | None = None,
    wallet: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What a template reads: ``traits``, ``computed``, ``loyalty``, ``event``, ``profile``, ``wallet``
    (the profile's add-to-wallet link per pass template key: ``{{ wallet.club_card }}``)."""
    return {"traits": dict(traits), "computed": dict(computed or {}), "loyalty": dict(loyalty or {}),
            "event": dict(event or {}), "profile": dict(profile or {}), "wallet": dict(wallet or {})}  # fmt: skip


def render(
    template: MessageTemplate, context: Mapping[str, Any], locale: str | None
) -> tuple[str, dict[str, str]]:
    """(language, the rendered fields) for one profile; :class:`MissingValue` if a value is missing."""
    language = choose_language(template, locale)
    rendered = {}
    for name, text in template.variants[language].items():
        try:
            rendered[name] = _compiled(text)(context)
        except UndefinedError as exc:
            raise MissingValue(_undefined_name(exc, text), language, name) from exc
        except SecurityError as exc:
            raise TemplateInvalid([TemplateProblem(language, name, f"not allowed: {exc}")]) from exc
    return language, rendered


def missing_values(
    template: MessageTemplate, audience: Iterable[tuple[str, Mapping[str, Any], str | None]]
) -> dict[str, list[str]]:
    """For ``(profile id, context, locale)`` triples: which missing value stops which profiles.

    Empty when every profile can be sent to; the keys are the variables (``traits.first_name``).
    """
    missing: defaultdict[str, list[str]] = defaultdict(list)
    for profile_id, context, locale in audience:
        try:
            render(template, context, locale)
        except MissingValue as exc:
            missing[exc.name].append(profile_id)
    return dict(missing)


def _undefined_name(exc: UndefinedError, text: str) -> str:
    """The variable an undefined-value error is about, as written (``traits.first_name``).

    Jinja2 only says ``'dict object' has no attribute 'first_name'``: the template's own dotted
    names tell which one it was.
    """
    message = str(exc.message or exc)
    if "has no attribute" not in message:
        return message.split(" is undefined")[0].strip("'\"")
    attribute = message.rsplit("attribute", 1)[-1].strip().strip("'\"")
    return next((path for path in _dotted_names(text) if path.endswith("." + attribute)), attribute)


@lru_cache(maxsize=512)
def _dotted_names(text: str) -> tuple[str, ...]:
    """Every ``a.b.c`` / ``a["b"]`` read in ``text``, as dotted names."""
    found = []
    for node in _ENVIRONMENT.parse(text).find_all((nodes.Getattr, nodes.Getitem)):
        parts: list[str] = []
        current: Any = node
        while isinstance(current, nodes.Getattr | nodes.Getitem):
            if isinstance(current, nodes.Getattr):
                parts.append(current.attr)
            elif isinstance(current.arg, nodes.Const):
                parts.append(str(current.arg.value))
            else:
                break
            current = current.node
        if isinstance(current, nodes.Name):
            found.append(".".join([current.name, *reversed(parts)]))
    return tuple(found)
