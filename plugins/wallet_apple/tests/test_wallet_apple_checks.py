"""What Apple Wallet would refuse, crop or ignore is reported with the field to fix and a plain reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any

from jsonschema import Draft202012Validator
from pydantic import BaseModel, SecretStr
from tessera_wallet_apple import testchain
from tessera_wallet_apple.channel import AppleWalletChannel, AppleWalletConfig
from tessera_wallet_apple.checks import apple_problems, pass_validator, png_size, schema_problems

from core.plugin_api import ChannelContext, PassBarcode, PassBeacon, PassField, PassLocation, Problem

PNG = testchain.sample_png


def problems(**changes: Any) -> dict[str, str]:
    """The problems of the sample store card with these changes, message by field."""
    found = apple_problems(testchain.store_card(**changes), None)
    return {problem.field: problem.message for problem in found}


def images(**kinds: dict[int, bytes]) -> dict[str, dict[int, bytes]]:
    """The store card's images with some kinds replaced (an empty dict removes a kind)."""
    merged = {**testchain.store_card_images(), **kinds}
    return {kind: by_scale for kind, by_scale in merged.items() if by_scale}


def test_a_well_made_store_card_has_no_problem() -> None:
    """The sample pass (icon, logo, strip at three scales; translations; QR; a location) can go."""
    assert apple_problems(testchain.store_card(), None) == []


def test_the_icon_is_required() -> None:
    """Without icon.png Wallet refuses the pass."""
    assert "needs an icon" in problems(images=images(icon={}))["images.icon"]
    only_2x = problems(images=images(icon={2: PNG(58, 58)}))
    assert "icon.png, 1x" in only_2x["images.icon"]


def test_images_larger_than_apples_maxima_are_reported_per_scale() -> None:
    """Sizes are points times scale: a 400x150 logo is fine at 3x (480x150) but too big at 1x (160x50)."""
    found = problems(images=images(logo={1: PNG(400, 150), 3: PNG(400, 150)}))
    assert found == {"images.logo": "The logo image is 400x150 pixels; at 1x Apple Wallet shows at most "
                                    "160x50 and crops the rest."}  # fmt: skip
    assert "images.icon@2x" in problems(images=images(icon={1: PNG(29, 29), 2: PNG(120, 120)}))


def test_the_strip_allowed_depends_on_style_and_barcode() -> None:
    """375x144 pt on a store card with a square barcode, 123 pt with a wide one, 98 pt on event tickets,
    and none on generic passes."""
    tall = images(strip={2: PNG(750, 288)})
    assert problems(images=tall) == {}
    pdf417 = problems(images=tall, barcode=PassBarcode(format="pdf417", message="1"))
    assert "at most 750x246" in pdf417["images.strip@2x"]
    assert "at most 750x196" in problems(style="eventTicket", images=tall)["images.strip@2x"]
    assert "generic passes show no strip image" in problems(style="generic", images=tall)["images.strip"]


def test_thumbnails_only_on_generic_and_event_tickets_and_in_shape() -> None:
    """A thumbnail on a store card is never shown; on a generic pass it must be between 2:3 and 3:2."""
    assert (
        "storeCard passes show no thumbnail"
        in problems(images=images(thumbnail={1: PNG(90, 90)}))["images.thumbnail"]
    )
    found = problems(style="generic", images=images(strip={}, thumbnail={1: PNG(90, 30)}))
    assert "between 2:3" in found["images.thumbnail"]


def test_images_must_be_pngs_at_scales_1_to_3() -> None:
    """A JPEG is not shown; there is no @4x."""
    found = problems(images=images(logo={1: b"\xff\xd8\xff\xe0 a jpeg", 4: PNG(640, 200)}))
    assert "not a PNG" in found["images.logo"]
    assert "scales 1, 2 and 3, not 4" in found["images.logo@4x"]
    assert png_size(PNG(12, 34)) == (12, 34) and png_size(b"GIF89a") is None


def test_colours_must_be_rgb_triples() -> None:
    """Hex colours and parts above 255 are refused on the field that holds them."""
    found = problems(background_color="#204080", label_color="rgb(0, 0, 300)")
    assert found == {"background_color": "'#204080' is not a colour like rgb(255, 255, 255).",
                     "label_color": "'rgb(0, 0, 300)' is not a colour like rgb(255, 255, 255)."}  # fmt: skip


def test_at_most_ten_locations_and_ten_beacons() -> None:
    """Wallet ignores the rest, so the marketer is told."""
    places = tuple(PassLocation(latitude=48.0 + i / 100, longitude=2.0) for i in range(11))
    beacons = tuple(
        PassBeacon(proximity_uuid="E2C56DB5-DFFB-48D2-B060-D0F5A71096E0", major=i) for i in range(11)
    )
    found = problems(locations=places, beacons=beacons)
    assert found["locations"] == "Apple Wallet uses at most 10 locations per pass; this one has 11."
    assert found["beacons"] == "Apple Wallet uses at most 10 beacons per pass; this one has 11."
    assert problems(locations=places[:10], beacons=beacons[:10]) == {}


def test_the_token_must_be_long_enough_when_devices_call_back() -> None:
    """authenticationToken is at least 16 characters; without a web service it is not used."""
    assert "at least 16" in problems(authentication_token="short")["authentication_token"]
    assert problems(authentication_token="short", web_service_url=None) == {}


def test_the_barcode_needs_a_message() -> None:
    """An empty message means the profile lacks the identifier the barcode shows."""
    assert "nothing to encode" in problems(barcode=PassBarcode(format="qr", message=""))["barcode"]


def test_field_keys_are_unique_and_change_messages_hold_the_new_value() -> None:
    """Two fields with one key, and a change message without %@."""
    fields = (
        PassField(key="points", area="primary", value="10", change_message="Your points changed"),
        PassField(key="points", area="back", value="x"),
    )
    found = problems(fields=fields)
    assert found["fields.points"] == "2 fields have the key 'points': each needs its own key."
    assert "must contain %@" in found["fields.points.change_message"]


def test_numeric_fields_hold_numbers_and_primary_fields_fit_the_style() -> None:
    """A store card shows one primary field; a numeric field must hold a number."""
    fields = (
        PassField(key="points", area="primary", value="lots", numeric=True),
        PassField(key="name", area="primary", value="Ada"),
    )
    found = problems(fields=fields)
    assert found["fields.points"] == "'lots' is not a number, but the field is numeric."
    assert found["fields"] == "storeCard passes show 1 primary field; this pass has 2."


def test_nfc_needs_both_parts_and_at_most_64_bytes() -> None:
    """A message without its key, or a message too long for the terminal."""
    assert "both a message and" in problems(nfc_message="hi")["nfc_message"]
    assert "64 bytes" in problems(nfc_message="é" * 33, nfc_public_key="MDkw")["nfc_message"]
    assert problems(nfc_message="é" * 32, nfc_public_key="MDkw") == {}


def test_language_codes_must_name_a_folder() -> None:
    """A translation language becomes `<lang>.lproj`."""
    found = problems(translations={"en/../../x": {"Tier": "T"}})
    assert "not a language code" in found["translations"]


def test_the_schema_is_patched_for_dates_after_2019() -> None:
    """The community schema rejects 2030 (its year pattern); the shipped copy is patched to accept it."""
    raw = json.loads(files("tessera_wallet_apple").joinpath("schema/pass.schema.json").read_text("utf-8"))
    date = "2030-01-01T10:00:00+00:00"
    assert not Draft202012Validator(raw["definitions"]["w3cDate"]).is_valid(date)
    assert problems(relevant_date=datetime(2030, 1, 1, 10, tzinfo=UTC)) == {}
    assert pass_validator() is pass_validator()  # loaded once


def test_schema_errors_point_at_the_field_and_say_what_is_wrong() -> None:
    """What only the schema catches is still reported, on the field it concerns."""
    data = {"formatVersion": 2, "passTypeIdentifier": "pass.x", "serialNumber": "1", "teamIdentifier": "T",
            "organizationName": "O", "description": "D",
            "storeCard": {"primaryFields": [{"key": "points", "value": 1, "textAlignment": "middle"}]},
            "barcodes": [{"format": "PKBarcodeFormatEAN13", "message": "1", "messageEncoding": "iso-8859-1"}]}  # fmt: skip
    found = {problem.field: problem.message for problem in schema_problems(data)}
    assert set(found) == {"formatVersion", "fields.points", "barcode"}
    assert all(message.startswith("Apple's pass format: ") for message in found.values())
    assert "PKBarcodeFormatEAN13" in found["barcode"]


def test_the_channel_checks_with_the_tenants_certificate() -> None:
    """check_pass uses the configured certificate, and says so when it has expired since it was saved."""
    chain = testchain.chain()
    config = AppleWalletConfig.model_validate(chain.p12_config())
    channel = AppleWalletChannel()

    def ctx(config: BaseModel | None) -> ChannelContext:
        return ChannelContext(tenant="t", config=config, sandbox=True, sandbox_url="", public_url="http://x")

    assert channel.check_pass(ctx(config), testchain.store_card()) == []
    # As the stored config is once its certificate has expired (model_construct: saved when it was valid).
    expired = AppleWalletConfig.model_construct(**{**config.model_dump(), "certificate_p12": None,
                                                   "certificate_pem": testchain.expired_certificate_pem(),
                                                   "private_key_pem": SecretStr(chain.private_key_pem)})  # fmt: skip
    (problem,) = channel.check_pass(ctx(expired), testchain.store_card())
    assert problem.field == "certificate" and "expired on" in problem.message
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    assert yesterday in problem.message
    assert isinstance(problem, Problem)
