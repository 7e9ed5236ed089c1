"""Request bodies: the documented shapes, and the template object valid against Meta's OpenAPI spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import SecretStr, ValidationError
from tessera_whatsapp.bodies import WhatsAppTemplate, message_body
from tessera_whatsapp.channel import WhatsAppConfig
from tessera_whatsapp.sending import base_url

SPEC = Path(__file__).parent / "spec" / "template_object.json"  # from Meta's OpenAPI spec (spec/README.md)
FULL = WhatsAppTemplate.model_validate(
    {
        "template_name": "order_update",
        "language": "en_US",
        "header_media_url": "https://x/h.jpg",
        "body_parameters": "Ana\n\nA-123\n",
        "button_parameters": "quick_reply:ORDER_DETAILS\nurl:order/123",
    }
)


def template_schema() -> dict[str, Any]:
    """The spec's TemplateObject, with its two documented quirks fixed (see the reference README)."""
    spec = json.loads(SPEC.read_text())
    schemas = spec["components"]["schemas"]
    schemas["LanguageObject"]["required"] = ["code"]  # the examples send no policy
    schemas["TemplateComponent"]["properties"]["index"]["pattern"] = "^[0-9]$"  # the spec's pattern is wrong
    return {"$ref": "#/components/schemas/TemplateObject", "components": spec["components"]}


def test_template_body_has_header_body_and_buttons() -> None:
    """Lines become parameters (blank ones dropped); buttons are indexed by position."""
    body = message_body("16505551234", FULL)
    assert body["type"] == "template" and body["messaging_product"] == "whatsapp"
    assert body["template"]["components"] == [
        {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://x/h.jpg"}}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "A-123"}]},
        {"type": "button", "sub_type": "quick_reply", "index": "0",
         "parameters": [{"type": "payload", "payload": "ORDER_DETAILS"}]},
        {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "order/123"}]},
    ]  # fmt: skip


def test_template_object_validates_against_the_openapi_schema() -> None:
    """Full and minimal template objects match the spec's TemplateObject."""
    schema = template_schema()
    jsonschema.validate(message_body("1", FULL)["template"], schema)
    minimal = WhatsAppTemplate(template_name="hello_world", header_text="Hi")
    jsonschema.validate(message_body("1", minimal)["template"], schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x"}, schema)  # the check is real: language is required


def test_text_and_media_bodies() -> None:
    """Free-form text and media bodies as in the spec's examples."""
    text = message_body("1", WhatsAppTemplate(kind="text", text="See https://x"))
    assert text["text"] == {"preview_url": True, "body": "See https://x"}
    audio = message_body("1", WhatsAppTemplate(kind="audio", media_url="https://x/a.ogg", caption="ignored"))
    assert audio["type"] == "audio" and audio["audio"] == {"link": "https://x/a.ogg"}


@pytest.mark.parametrize(
    "fields",
    [{}, {"kind": "text"}, {"kind": "image"}, {"template_name": "a", "button_parameters": "phone:1"}],
)
def test_template_refuses_what_cannot_be_sent(fields: dict[str, Any]) -> None:
    """Each kind needs its content; buttons need a known sub type."""
    with pytest.raises(ValidationError):
        WhatsAppTemplate.model_validate(fields)


def test_base_url_sandbox_gateway_or_meta() -> None:
    """Sandbox mode wins, then a configured gateway, then graph.facebook.com."""
    secret = SecretStr("s")
    config = WhatsAppConfig(phone_number_id="1", business_account_id="2", access_token=secret,
                            app_secret=secret, webhook_verify_token=secret)  # fmt: skip
    assert base_url(config, False, "http://sb") == "https://graph.facebook.com"
    assert base_url(config, True, "http://sb/") == "http://sb"
    gateway = config.model_copy(update={"api_url": "https://gw.example/"})
    assert base_url(gateway, False, "http://sb") == "https://gw.example"
    assert config.messages_per_second == 80
