"""A rendered pass becomes a Google Wallet class and object that Google's own schema accepts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tessera_wallet_google.objects import (
    PAYLOAD_KEYS,
    SCHEMAS,
    GooglePass,
    Kind,
    announcements,
    class_id,
    google_pass,
    google_problems,
    hex_colour,
    kind_of,
    message,
)
from tessera_wallet_google.schema import required_properties, schema_problems

from core.passes.rendering import NOTICE_KEY
from core.plugin_api import PassBarcode, PassField, PassLocation, RenderedPass

ISSUER = "3388000000012345678"
SERIAL = f"{ISSUER}.5f3a9c0e7b1d4a2f"
NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
EXPIRES = datetime(2031, 1, 1, tzinfo=UTC)
CALLBACK = "https://cdp.example.com/webhooks/shop/wallet_google"
FRENCH = {
    "Shop Club": "Club Boutique",
    "Shop club card": "Carte du club",
    "Tier": "Niveau",
    "Points": "Points fidélité",
    "Member since": "Membre depuis",
    "Terms": "Conditions",
    "Valid in all stores": "Valable dans tous les magasins",
    "Website": "Site web",
    "Double points this weekend": "Points doublés ce week-end",
    "Jazz night": "Soirée jazz",
    "Concert": "Concert du soir",
    "Balance": "Solde",
}
GERMAN = {
    "Shop Club": "Shop-Klub",
    "Shop club card": "Klubkarte",
    "Tier": "Stufe",
    "Points": "Punkte",
    "Member since": "Mitglied seit",
    "Terms": "Bedingungen",
    "Valid in all stores": "Gültig in allen Filialen",
    "Website": "Webseite",
    "Double points this weekend": "Doppelte Punkte am Wochenende",
    "Jazz night": "Jazzabend",
    "Concert": "Konzert",
    "Balance": "Guthaben",
}
FRONT = (
    PassField(key="tier", area="header", label="Tier", value="Gold", role="tier"),
    PassField(
        key="points", area="primary", label="Points", value="1250", numeric=True, role="points",
        change_message="You now have %@ points",
    ),
    PassField(key="member", area="secondary", label="Member", value="Ada Lovelace", role="member"),
    PassField(key="since", area="auxiliary", label="Member since", value="2021"),
)  # fmt: skip
BACK = (
    PassField(key="terms", area="back", label="Terms", value="Valid in all stores"),
    PassField(
        key="site", area="back", label="Website", value="shop.example.com", link="https://shop.example.com"
    ),
    PassField(key=NOTICE_KEY, area="back", value="Double points this weekend", change_message="%@"),
)
IMAGE_URLS: dict[str, str] = {
    "icon": "https://cdp.example.com/passes/images/1/icon@2x.png",
    "logo": "https://cdp.example.com/passes/images/2/logo@2x.png",
    "strip": "https://cdp.example.com/passes/images/3/strip@2x.png",
}


def rendered(**changes: Any) -> RenderedPass:
    """A store card with everything Google can show: translations, QR, points, links, places, images."""
    data: dict[str, Any] = {
        "serial": SERIAL,
        "authentication_token": "a" * 32,
        "style": "storeCard",
        "organization_name": "Shop Club",
        "description": "Shop club card",
        "background_color": "rgb(16, 32, 48)",
        "fields": FRONT + BACK,
        "barcode": PassBarcode(format="qr", message="CUST-0042", alt_text="0042"),
        "expiration_date": EXPIRES,
        "locations": (PassLocation(latitude=48.8566, longitude=2.3522, relevant_text="Paris store"),),
        "image_urls": IMAGE_URLS,
        "template_key": "club_card",
        "language": "en",
        "translations": {"fr": FRENCH, "de": GERMAN},
        "updated_at": NOW - timedelta(days=1),
    }
    data.update(changes)
    return RenderedPass(**data)


def gift_card(**changes: Any) -> RenderedPass:
    """A gift card: the member field holds the card number, the points field a euro balance."""
    fields = (
        PassField(key="number", area="secondary", label="Card", value="6006123412341234", role="member"),
        PassField(key="balance", area="primary", label="Balance", value="25.50", numeric=True, role="points"),
        *BACK,
    )
    data: dict[str, Any] = {"wallet_settings": {"kind": "giftCard", "currency": "EUR"}, "fields": fields}
    return rendered(**{**data, **changes})


def event_ticket(**changes: Any) -> RenderedPass:
    """An event ticket, which Google shows as a generic pass."""
    fields = (
        PassField(key="event", area="primary", label="Concert", value="Jazz night"),
        PassField(key="seat", area="secondary", label="Seat", value="B12"),
        *BACK,
    )
    return rendered(**{"style": "eventTicket", "fields": fields, **changes})


PASSES: dict[Kind, RenderedPass] = {
    "loyalty": rendered(),
    "offer": rendered(style="coupon"),
    "generic": event_ticket(),
    "giftCard": gift_card(),
}


def build(pass_: RenderedPass, now: datetime = NOW) -> GooglePass:
    """The Google class and object of ``pass_`` for the sample issuer and tenant."""
    return google_pass(pass_, issuer_id=ISSUER, tenant="shop", callback_url=CALLBACK, now=now)


def localized_strings(node: Any) -> list[dict[str, Any]]:
    """Every LocalizedString (a dict with a defaultValue) inside ``node``."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "defaultValue" in node:
            found.append(node)
        for value in node.values():
            found += localized_strings(value)
    elif isinstance(node, list):
        for item in node:
            found += localized_strings(item)
    return found


# --- every kind validates against Google's schema ---------------------------------------------------
@pytest.mark.parametrize("kind", list(PASSES))
def test_class_and_object_of_every_kind_are_valid_for_google(kind: Kind) -> None:
    """The class, the object and a save JWT's payload of each kind pass the official discovery schemas."""
    built = build(PASSES[kind])
    class_schema, object_schema = SCHEMAS[kind]
    assert built.kind == kind
    assert schema_problems(class_schema, built.class_body) == []
    assert schema_problems(object_schema, built.object_body) == []
    classes, objects = PAYLOAD_KEYS[kind]
    payload = {classes: [built.class_body], objects: [built.object_body]}
    assert schema_problems("Resources", payload) == []
    assert google_problems(PASSES[kind]) == []


@pytest.mark.parametrize("kind", list(PASSES))
def test_every_kind_is_still_valid_with_the_least_content(kind: Kind) -> None:
    """No fields, barcode, images, dates or places: still valid (only a loyalty card then lacks its logo)."""
    bare = PASSES[kind].model_copy(
        update={"fields": (), "barcode": None, "image_urls": {}, "expiration_date": None, "locations": ()}
    )
    built = build(bare)
    class_schema, object_schema = SCHEMAS[kind]
    assert schema_problems(object_schema, built.object_body) == []
    expected = ["programLogo: required property is missing"] if kind == "loyalty" else []
    assert schema_problems(class_schema, built.class_body) == expected


def test_a_loyalty_card_maps_to_googles_loyalty_fields() -> None:
    """Points natively, member as the account, tier and other fields as text, links, places, dates, images."""
    built = build(rendered())
    klass, obj = built.class_body, built.object_body
    assert built.class_id == f"{ISSUER}.shop.club_card" == obj["classId"]
    assert built.object_id == SERIAL == obj["id"]
    assert klass["issuerName"] == "Shop Club" and klass["programName"] == "Shop club card"
    assert klass["programLogo"]["sourceUri"] == {"uri": IMAGE_URLS["logo"]}
    assert klass["heroImage"]["sourceUri"] == {"uri": IMAGE_URLS["strip"]}
    assert klass["hexBackgroundColor"] == "#102030"
    assert klass["reviewStatus"] == "UNDER_REVIEW"
    assert klass["callbackOptions"] == {"url": CALLBACK}
    assert obj["state"] == "ACTIVE"
    assert obj["barcode"] == {"type": "QR_CODE", "value": "CUST-0042", "alternateText": "0042"}
    assert obj["loyaltyPoints"]["balance"] == {"int": 1250}
    assert obj["loyaltyPoints"]["label"] == "Points"
    assert (obj["accountName"], obj["accountId"]) == ("Ada Lovelace", "CUST-0042")
    assert [m["id"] for m in obj["textModulesData"]] == ["tier", "since", "terms"]
    assert obj["textModulesData"][0]["header"] == "Tier" and obj["textModulesData"][0]["body"] == "Gold"
    assert obj["linksModuleData"]["uris"][0]["uri"] == "https://shop.example.com"
    assert obj["linksModuleData"]["uris"][0]["description"] == "Website"
    assert obj["merchantLocations"] == [{"latitude": 48.8566, "longitude": 2.3522}]
    assert obj["validTimeInterval"] == {"end": {"date": "2031-01-01T00:00:00+00:00"}}
    assert obj["messages"][0]["id"] == "notice"
    assert obj["messages"][0]["body"] == "Double points this weekend"
    assert obj["messages"][0]["messageType"] == "TEXT"


def test_an_offer_class_names_its_title_provider_and_channel() -> None:
    """Offers need a title, a provider and where they are redeemed."""
    klass = build(rendered(style="coupon")).class_body
    assert (klass["title"], klass["provider"], klass["redemptionChannel"]) == (
        "Shop club card",
        "Shop Club",
        "BOTH",
    )
    assert klass["titleImage"]["sourceUri"] == {"uri": IMAGE_URLS["logo"]}


def test_a_generic_pass_shows_the_primary_field_as_its_title() -> None:
    """cardTitle is the organization, header the primary value under its label; the rest is text."""
    built = build(event_ticket())
    obj = built.object_body
    assert built.kind == "generic" and set(built.class_body) == {"id", "callbackOptions"}
    assert obj["cardTitle"]["defaultValue"] == {"language": "en", "value": "Shop Club"}
    assert obj["header"]["defaultValue"]["value"] == "Jazz night"
    assert obj["subheader"]["defaultValue"]["value"] == "Concert"
    assert obj["logo"]["sourceUri"] == {"uri": IMAGE_URLS["logo"]}
    assert obj["hexBackgroundColor"] == "#102030"
    assert [m["id"] for m in obj["textModulesData"]] == ["seat", "terms"]


def test_a_gift_card_carries_its_number_and_balance_in_micros() -> None:
    """The member field is the card number; with a currency, the points field is a Money balance."""
    obj = build(gift_card()).object_body
    assert obj["cardNumber"] == "6006123412341234"
    assert obj["balance"] == {"micros": "25500000", "currencyCode": "EUR"}
    assert obj["balanceUpdateTime"] == {"date": "2030-05-31T12:00:00+00:00"}
    without_currency = build(gift_card(wallet_settings={"kind": "giftCard"})).object_body
    assert "balance" not in without_currency
    assert [m["body"] for m in without_currency["textModulesData"]] == ["25.50", "Valid in all stores"]


# --- translations ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(PASSES))
def test_translated_texts_carry_every_language(kind: Kind) -> None:
    """Each text the template translates goes to Google with its French and German versions."""
    built = build(PASSES[kind])
    strings = localized_strings(built.class_body) + localized_strings(built.object_body)
    translated = [s for s in strings if "translatedValues" in s]
    assert translated, "no text was sent with translations"
    for string in translated:
        default = string["defaultValue"]["value"]
        assert string["translatedValues"] == [
            {"language": "fr", "value": FRENCH[default]},
            {"language": "de", "value": GERMAN[default]},
        ]


def test_translations_use_googles_localized_fields() -> None:
    """Text modules, links, points labels and the notice use localizedHeader/Body/Description/Label."""
    obj = build(rendered()).object_body
    terms = next(m for m in obj["textModulesData"] if m["id"] == "terms")
    assert terms["localizedHeader"]["translatedValues"][0] == {"language": "fr", "value": "Conditions"}
    assert terms["localizedBody"]["translatedValues"][1] == {
        "language": "de",
        "value": "Gültig in allen Filialen",
    }
    link = obj["linksModuleData"]["uris"][0]
    assert link["localizedDescription"]["translatedValues"][1]["value"] == "Webseite"
    assert obj["loyaltyPoints"]["localizedLabel"]["translatedValues"][0]["value"] == "Points fidélité"
    assert obj["messages"][0]["localizedBody"]["translatedValues"][0]["value"] == "Points doublés ce week-end"
    untranslated = next(m for m in obj["textModulesData"] if m["id"] == "since")
    assert "localizedBody" not in untranslated  # "2021" has no translation: nothing to localize


def test_language_codes_become_bcp47() -> None:
    """Google wants pt-BR where templates may say pt_BR."""
    obj = build(rendered(translations={"pt_BR": {"Terms": "Termos"}})).object_body
    terms = next(m for m in obj["textModulesData"] if m["id"] == "terms")
    assert terms["localizedHeader"]["translatedValues"] == [{"language": "pt-BR", "value": "Termos"}]


# --- state -------------------------------------------------------------------------------------
def test_state_follows_voiding_and_expiration() -> None:
    """Voided passes are INACTIVE, passes past (or at) their expiration EXPIRED, others ACTIVE."""
    assert build(rendered(), now=EXPIRES - timedelta(seconds=1)).object_body["state"] == "ACTIVE"
    assert build(rendered(), now=EXPIRES).object_body["state"] == "EXPIRED"
    assert build(rendered(), now=EXPIRES + timedelta(days=1)).object_body["state"] == "EXPIRED"
    assert build(rendered(voided=True)).object_body["state"] == "INACTIVE"
    assert (
        build(rendered(expiration_date=None), now=EXPIRES + timedelta(days=999)).object_body["state"]
        == "ACTIVE"
    )


# --- the schema catches mistakes -------------------------------------------------------------------
def test_the_schema_refuses_unknown_properties_at_any_depth() -> None:
    """A misspelt or invented key is named with its path."""
    obj = build(rendered()).object_body
    assert schema_problems("LoyaltyObject", {**obj, "colour": "red"}) == [
        "colour: unknown property (not in Google's schema)"
    ]
    modules = [{**obj["textModulesData"][0], "title": "x"}]
    assert schema_problems("LoyaltyObject", {**obj, "textModulesData": modules}) == [
        "textModulesData[0].title: unknown property (not in Google's schema)"
    ]


def test_the_schema_keeps_enums_exact() -> None:
    """Barcode types and states are Google's exact values: our own names or other casings are refused."""
    obj = build(rendered()).object_body
    problems = schema_problems("LoyaltyObject", {**obj, "barcode": {**obj["barcode"], "type": "qr"}})
    assert len(problems) == 1 and problems[0].startswith("barcode.type: 'qr' is not one of")
    assert schema_problems("LoyaltyObject", {**obj, "state": "Active"})[0].startswith("state: 'Active'")
    assert schema_problems("LoyaltyObject", {**obj, "state": "EXPIRED"}) == []


def test_the_schema_requires_what_google_marks_required() -> None:
    """Missing required properties are named; they are required only at the top of a pass resource."""
    obj = build(rendered()).object_body
    without_state = {key: value for key, value in obj.items() if key != "state"}
    assert schema_problems("LoyaltyObject", without_state) == ["state: required property is missing"]
    klass = build(rendered()).class_body
    without_logo = {key: value for key, value in klass.items() if key != "programLogo"}
    assert schema_problems("LoyaltyClass", without_logo) == ["programLogo: required property is missing"]
    # A "skinny" save JWT names objects by id only: nothing is required inside Resources.
    assert schema_problems("Resources", {"loyaltyObjects": [{"id": SERIAL}]}) == []
    assert schema_problems("Resources", {"loyaltyObjects": [{"id": SERIAL, "colour": "red"}]}) == [
        "loyaltyObjects[0].colour: unknown property (not in Google's schema)"
    ]


def test_required_properties_are_the_ones_google_describes_as_required() -> None:
    """Read from the "Required." descriptions; GenericObject state is optional (Google defaults to ACTIVE)."""
    resources = sorted(name for pair in SCHEMAS.values() for name in pair)
    assert {name: sorted(required_properties(name)) for name in resources} == {
        "GenericClass": ["id"],
        "GenericObject": ["cardTitle", "classId", "header", "id"],
        "GiftCardClass": ["id", "issuerName", "reviewStatus"],
        "GiftCardObject": ["cardNumber", "classId", "id", "state"],
        "LoyaltyClass": ["id", "issuerName", "programLogo", "programName", "reviewStatus"],
        "LoyaltyObject": ["classId", "id", "state"],
        "OfferClass": ["id", "issuerName", "provider", "redemptionChannel", "reviewStatus", "title"],
        "OfferObject": ["classId", "id", "state"],
    }  # fmt: skip
    assert required_properties("Message") == []


def test_the_schema_wants_int64_as_strings_of_digits() -> None:
    """Money micros are int64: Google's JSON writes them as strings of digits."""
    obj = build(gift_card()).object_body
    for wrong in ("25.5", "12a", 25500000):
        problems = schema_problems(
            "GiftCardObject", {**obj, "balance": {"micros": wrong, "currencyCode": "EUR"}}
        )
        assert len(problems) == 1 and problems[0].startswith("balance.micros: "), problems
    assert (
        schema_problems("GiftCardObject", {**obj, "balance": {"micros": "-5", "currencyCode": "EUR"}}) == []
    )


def test_the_schema_checks_types_and_int32_ranges() -> None:
    """A number where text is due, or an int beyond int32, is named with its path."""
    obj = build(rendered()).object_body
    points = {"label": "Points", "balance": {"int": 2**31}}
    assert schema_problems("LoyaltyObject", {**obj, "loyaltyPoints": points}) == [
        "loyaltyPoints.balance.int: 2147483648 is greater than the maximum of 2147483647"
    ]
    assert schema_problems("LoyaltyObject", {**obj, "accountId": 42}) == [
        "accountId: 42 is not of type 'string'"
    ]


# --- messages and announcements --------------------------------------------------------------------
def test_messages_notify_only_when_asked() -> None:
    """addMessage bodies are valid Messages: TEXT_AND_NOTIFY pushes a notification, TEXT does not."""
    loud = message("Your points doubled", message_id="m-1", header="Shop Club", notify=True)
    quiet = message("Your points doubled", message_id="m-2", header="Shop Club", notify=False)
    assert loud == {
        "id": "m-1",
        "messageType": "TEXT_AND_NOTIFY",
        "header": "Shop Club",
        "body": "Your points doubled",
    }
    assert quiet["messageType"] == "TEXT"
    assert schema_problems("AddMessageRequest", {"message": loud}) == []
    assert schema_problems("Message", quiet) == []


def test_announcements_put_the_new_value_into_the_change_message() -> None:
    """Changed fields with a change message become lock-screen texts, in the order asked."""
    texts = announcements(rendered(), [NOTICE_KEY, "points", "tier", "unknown"])
    assert texts == ["Double points this weekend", "You now have 1250 points"]


# --- what Google would refuse ------------------------------------------------------------------
def test_a_loyalty_card_without_a_logo_is_a_problem() -> None:
    """Google requires the program logo; the icon will do when there is no logo."""
    problems = google_problems(rendered(image_urls={"strip": IMAGE_URLS["strip"]}))
    assert [(p.field, p.message) for p in problems] == [
        ("images.logo", "A Google Wallet loyalty card needs a logo: add a logo (or icon) image.")
    ]
    assert google_problems(rendered(image_urls={"icon": IMAGE_URLS["icon"]})) == []
    assert google_problems(rendered(style="coupon", image_urls={})) == []


def test_more_than_ten_text_fields_is_a_problem() -> None:
    """Google shows 10 text modules from the object; the 11th would silently disappear."""
    extra = tuple(
        PassField(key=f"note{i}", area="back", label=f"Note {i}", value=f"text {i}") for i in range(8)
    )
    problems = google_problems(rendered(fields=FRONT + BACK + extra))  # tier, since, terms + 8 notes
    assert len(problems) == 1 and problems[0].field == "fields"
    assert problems[0].message.startswith(
        "Google Wallet shows at most 10 text fields on a pass; this one has 11"
    )
    assert google_problems(rendered(fields=FRONT + BACK + extra[:7])) == []


def test_other_things_google_refuses_are_problems() -> None:
    """A gift card without a number, more than 10 places, an empty barcode, a wrong currency."""
    no_number = gift_card(fields=BACK, barcode=None)
    assert [p.field for p in google_problems(no_number)] == ["fields"]
    assert "card number" in google_problems(no_number)[0].message
    assert build(no_number).object_body["cardNumber"] == SERIAL  # still a valid body
    places = tuple(PassLocation(latitude=48.0, longitude=2.0 + i / 100) for i in range(11))
    assert [p.field for p in google_problems(rendered(locations=places))] == ["locations"]
    assert [p.field for p in google_problems(rendered(barcode=PassBarcode(format="qr", message="")))] == [
        "barcode"
    ]
    euro = gift_card(wallet_settings={"kind": "giftCard", "currency": "euro"})
    assert [p.field for p in google_problems(euro)] == ["wallet_settings.currency"]


# --- ids, kinds, colours -------------------------------------------------------------------------
def test_class_ids_use_only_googles_id_characters() -> None:
    """Issuer id, tenant and template key, joined by dots; anything else becomes an underscore."""
    assert class_id(ISSUER, "shop-club", "club_card") == f"{ISSUER}.shop-club.club_card"
    assert class_id(ISSUER, "shop", "café card/2") == f"{ISSUER}.shop.caf__card_2"
    assert class_id(ISSUER, "shop", "") == f"{ISSUER}.shop.pass"


def test_the_kind_comes_from_the_google_settings_else_the_style() -> None:
    """An editor's valid kind wins; an unknown one falls back to the style's kind."""
    assert kind_of(rendered(style="coupon")) == "offer"
    assert kind_of(rendered(style="generic")) == "generic"
    assert kind_of(rendered(wallet_settings={"kind": "giftCard"})) == "giftCard"
    assert kind_of(rendered(style="eventTicket", wallet_settings={"kind": "flight"})) == "generic"


def test_colours_become_hex() -> None:
    """rgb(), #rgb and #rrggbb all become Google's #rrggbb."""
    assert hex_colour("rgb(255, 0, 16)") == "#ff0010"
    assert hex_colour("#ABCDEF") == "#abcdef"
    assert hex_colour("#fa0") == "#ffaa00"
    assert hex_colour("rgb(300, 0, 0)") is None and hex_colour(None) is None


def test_a_thumbnail_becomes_an_image_module_that_google_accepts() -> None:
    thumbnail = "https://cdp.example.com/passes/images/4/thumbnail@2x.png"
    pass_ = rendered(image_urls={**IMAGE_URLS, "thumbnail": thumbnail})
    built = google_pass(pass_, issuer_id=ISSUER, tenant="shop", callback_url=None, now=NOW)
    (module,) = built.object_body["imageModulesData"]
    assert module["mainImage"]["sourceUri"]["uri"] == thumbnail
    assert schema_problems("LoyaltyObject", built.object_body) == []
    plain = google_pass(rendered(), issuer_id=ISSUER, tenant="shop", callback_url=None, now=NOW)
    assert "imageModulesData" not in plain.object_body
