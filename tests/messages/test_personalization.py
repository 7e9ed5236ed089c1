"""Personalized content: one language per profile, values from the profile and the event, a sandbox,
and a missing value or a broken template refused with where and why, never sent as a blank."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from core.messages.personalization import (
    MessageTemplate,
    MissingValue,
    TemplateInvalid,
    check_template,
    choose_language,
    message_context,
    missing_values,
    render,
)

WELCOME = MessageTemplate(
    variants={
        "en": {"title": "Hello {{ traits.first_name }}", "body": "You have {{ loyalty.points }} points."},
        "fr": {"title": "Bonjour {{ traits.first_name }}", "body": "Vous avez {{ loyalty.points }} points."},
        "pt_BR": {"title": "Olá {{ traits.first_name }}", "body": "Você tem {{ loyalty.points }} pontos."},
    },
    fallback="en",
)


def context(**traits) -> dict:
    return message_context(traits, computed={"rfm_segment": "champions"}, loyalty={"points": 120},
                           event={"event": "Order Completed", "properties": {"total": 42.5}})  # fmt: skip


@pytest.mark.parametrize(
    ("locale", "language"),
    [("fr", "fr"), ("fr_CA", "fr"), ("fr-FR", "fr"), ("pt_BR", "pt_BR"), ("pt", "pt_BR"), ("de_DE", "en"),
     (None, "en"), ("", "en")],
)  # fmt: skip
def test_the_language_follows_the_profiles_locale_with_a_fallback(locale, language) -> None:
    assert choose_language(WELCOME, locale) == language


def test_fields_render_from_traits_loyalty_computed_and_the_event() -> None:
    template = MessageTemplate(
        variants={"en": {"body": "{{ traits.first_name|title }}, a {{ computed.rfm_segment }}: "
                                 "thanks for {{ '%.2f'|format(event.properties.total) }} EUR"}},
        fallback="en",
    )  # fmt: skip
    assert render(template, context(first_name="ann"), "en") == (
        "en",
        {"body": "Ann, a champions: thanks for 42.50 EUR"},
    )
    assert render(WELCOME, context(first_name="Zoé"), "fr_FR") == (
        "fr", {"title": "Bonjour Zoé", "body": "Vous avez 120 points."})  # fmt: skip


def test_a_missing_value_is_an_error_naming_the_variable_not_a_blank() -> None:
    with pytest.raises(MissingValue) as caught:
        render(WELCOME, context(), "fr")
    assert (caught.value.name, caught.value.language, caught.value.field) == (
        "traits.first_name",
        "fr",
        "title",
    )


def test_before_a_launch_the_profiles_lacking_a_value_are_listed() -> None:
    audience = [
        ("p1", context(first_name="Ann"), "en"),
        ("p2", context(), "fr"),
        ("p3", message_context({"first_name": "Bo"}), "en"),  # no loyalty data yet
        ("p4", context(), None),
    ]
    assert missing_values(WELCOME, audience) == {"traits.first_name": ["p2", "p4"], "loyalty.points": ["p3"]}
    assert missing_values(WELCOME, audience[:1]) == {}


@pytest.mark.parametrize(
    ("variants", "fallback", "message"),
    [
        ({"en": {"body": "Hi {{ traits.first_name "}}, "en", "unexpected end of template"),
        ({"en": {"body": "{% if traits.vip %}VIP"}}, "en", "Unexpected end of template"),
        ({"en": {"body": "Hi {{ first_name }}"}}, "en", "unknown variable(s) first_name"),
        ({"english": {"body": "Hi"}}, "english", "is not a language code"),
    ],
)  # fmt: skip
def test_a_broken_template_is_refused_with_the_language_field_and_reason(variants, fallback, message) -> None:
    with pytest.raises(TemplateInvalid) as caught:
        check_template(MessageTemplate(variants=variants, fallback=fallback))
    assert any(message in problem.message for problem in caught.value.problems), caught.value.problems
    assert caught.value.problems[0].language == next(iter(variants))


def test_a_syntax_error_says_on_which_line() -> None:
    template = MessageTemplate(
        variants={"en": {"body": "Line one\nLine two {{ traits.x + }}"}}, fallback="en"
    )
    with pytest.raises(TemplateInvalid) as caught:
        check_template(template)
    assert caught.value.problems[0].line == 2 and caught.value.problems[0].field == "body"


def test_the_fallback_must_have_texts() -> None:
    with pytest.raises(ValueError, match="fallback language 'de' has no texts"):
        MessageTemplate(variants={"en": {"body": "Hi"}}, fallback="de")


def test_the_sandbox_refuses_python_internals() -> None:
    sneaky = MessageTemplate(variants={"en": {"body": "{{ traits.__class__.__mro__ }}"}}, fallback="en")
    with pytest.raises(TemplateInvalid, match="not allowed"):
        render(sneaky, context(first_name="Ann"), "en")


def test_a_valid_template_passes_the_check() -> None:
    check_template(WELCOME)


# Texts: plain ones (line breaks of every kind, braces alone) and ones with Jinja2 in them.
TEXTS = st.lists(
    st.sampled_from(["Hi ", "\n", "\r\n", "\r", "}", "{ x }", "%}", "ü", "{{ traits.first_name }}",
                     "{% for i in range(2) %}{{ i }}{% endfor %}", "{# note #}", "{% set n = namespace(a=1) %}{{ n.a }}",
                     "{{ loyalty.points | string }}"]),
    max_size=8,
).map("".join)  # fmt: skip


@given(TEXTS)
def test_a_text_renders_exactly_as_jinja2_renders_it(text: str) -> None:
    jinja = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    template = MessageTemplate(variants={"en": {"body": text}}, fallback="en")
    values = context(first_name="Ann")
    assert render(template, values, "en")[1]["body"] == jinja.from_string(text).render(**values)
