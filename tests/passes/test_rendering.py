"""Rendering one profile's pass: every text personalized, translations per language, and problems
that name the text at fault instead of a broken pass."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from core.messages.personalization import message_context
from core.passes.design import PassDesign
from core.passes.rendering import Materials, PassIdentity, content_hash, render_pass
from core.plugin_api import Problem, RenderedPass

IDENTITY = PassIdentity("SERIAL123", "a-token-of-24-characters", "https://cdp.example/x/shop/wallet_apple")


def design(**changes: Any) -> PassDesign:
    """A store card with a points field, a name field, a QR barcode and a French translation."""
    raw: dict[str, Any] = {
        "style": "storeCard", "organization_name": "Tessera Shop", "description": "Tessera Club card",
        "background_color": "rgb(20, 40, 60)",
        "fields": [
            {"key": "points", "area": "primary", "label": "Points", "value": "{{ loyalty.balance }}",
             "change_message": "You now have %@ points", "numeric": True, "role": "points"},
            {"key": "name", "area": "secondary", "label": "Member", "value": "{{ traits.first_name }}"},
            {"key": "terms", "area": "back", "label": "Terms", "value": "See our site",
             "link": "https://shop.example/terms"},
        ],
        "barcode": {"format": "qr", "message": "{{ wallet.serial }}", "alt_text": "{{ wallet.serial }}"},
        "translations": {"fr": {"field.points.label": "Points fidélité", "field.name.label": "Membre",
                                "field.points.change_message": "Vous avez %@ points"}},
        **changes,
    }  # fmt: skip
    return PassDesign.model_validate(raw)


def materials(d: PassDesign) -> Materials:
    return Materials.of(d, [], [])


def context(**traits: Any) -> dict[str, Any]:
    return message_context(traits, {}, {"balance": 120}, None, {"id": "p1", "name": "Ada"})


def test_texts_are_personalized_and_translated_per_language() -> None:
    rendered = render_pass(materials(design()), context(first_name="Ada"), IDENTITY)
    assert isinstance(rendered, RenderedPass)
    values = {f.key: (f.label, f.value, f.change_message) for f in rendered.fields}
    assert values["points"] == ("Points", "120", "You now have %@ points")
    assert values["name"] == ("Member", "Ada")[:2] + (None,)
    assert rendered.barcode is not None and rendered.barcode.message == "SERIAL123"
    # French maps each default text to its translation; untranslated texts are left out.
    assert rendered.translations["fr"] == {
        "Points": "Points fidélité", "Member": "Membre", "You now have %@ points": "Vous avez %@ points"
    }  # fmt: skip
    assert rendered.web_service_url == IDENTITY.web_service_url and rendered.serial == "SERIAL123"


def test_a_missing_bound_value_is_a_problem_naming_the_text() -> None:
    problems = render_pass(materials(design()), context(), IDENTITY)
    assert problems == [Problem("field.name.value", "traits.first_name has no value for this profile")]


def test_a_date_that_does_not_parse_is_a_problem() -> None:
    problems = render_pass(materials(design(expiration_date="{{ traits.until }}")), context(first_name="A",
                           until="next week"), IDENTITY)  # fmt: skip
    assert isinstance(problems, list)
    assert problems[0].field == "expiration_date" and "not a date" in problems[0].message


def test_a_value_that_still_holds_template_syntax_is_a_problem() -> None:
    problems = render_pass(materials(design()), context(first_name="{{ evil }}"), IDENTITY)
    assert isinstance(problems, list) and problems[0].field == "field.name.value"
    assert "template syntax" in problems[0].message


def test_dates_render_with_a_time_zone() -> None:
    rendered = render_pass(
        materials(design(relevant_date="2030-01-01T10:00:00")), context(first_name="A"), IDENTITY
    )
    assert isinstance(rendered, RenderedPass)
    assert rendered.relevant_date == datetime(2030, 1, 1, 10, tzinfo=UTC)


def test_the_content_hash_follows_what_the_pass_shows_not_when_it_was_made() -> None:
    d = materials(design())
    first = render_pass(d, context(first_name="Ada"), IDENTITY, now=datetime(2026, 1, 1, tzinfo=UTC))
    again = render_pass(d, context(first_name="Ada"), IDENTITY, now=datetime(2026, 6, 1, tzinfo=UTC))
    richer = render_pass(d, {**context(first_name="Ada"), "loyalty": {"balance": 130}}, IDENTITY)
    assert (
        isinstance(first, RenderedPass)
        and isinstance(again, RenderedPass)
        and isinstance(richer, RenderedPass)
    )
    assert content_hash(first, d) == content_hash(again, d) != content_hash(richer, d)


def test_a_notice_becomes_a_back_field_that_announces_itself() -> None:
    identity = PassIdentity("S", "a-token-of-24-characters", None, notice="Double points today!")
    rendered = render_pass(materials(design()), context(first_name="Ada"), identity)
    assert isinstance(rendered, RenderedPass)
    notice = rendered.fields[-1]
    assert (notice.area, notice.value, notice.change_message) == ("back", "Double points today!", "%@")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"background_color": "#ff0000"}, "not a colour like rgb(255, 255, 255)"),
        ({"fields": [{"key": "a", "area": "primary", "value": "1"}, {"key": "a", "area": "back", "value": "2"}]},
         "two fields have the key 'a'"),
        ({"fields": [{"key": "a", "area": "primary", "value": "1", "change_message": "now"}]}, "must contain %@"),
        ({"store_ids": list(range(11))}, "at most 10"),
    ],
)  # fmt: skip
def test_designs_refuse_what_no_wallet_accepts(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        design(**change)
    assert message in str(caught.value)
