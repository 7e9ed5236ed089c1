"""The template, the request body (valid against fcm.v1.json) and the preview."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from tessera_push_fcm.channel import FcmChannel
from tessera_push_fcm.message import OPEN_URL_KEY, FcmTemplate, send_request
from tessera_push_fcm.schema import schema_problems

from core.plugin_api import ChannelContext, ProfileSnapshot

FULL = FcmTemplate(
    title="Sale",
    body="50% off today",
    image_url="https://cdn.example.com/sale.png",
    data={"campaign": "c42"},
    deep_link="shop://sale",
    analytics_label="campaign_42",
    android_priority="high",
    android_channel_id="promos",
    android_ttl_seconds=3600,
    apns_sound="default",
    apns_badge=1,
)


def test_full_template_body_is_valid_against_the_discovery_schema() -> None:
    """Every field set: the body is a valid SendMessageRequest and carries the overrides."""
    body = send_request(FULL, "tok:APA91b")
    assert schema_problems("SendMessageRequest", body) == []
    message = body["message"]
    assert message["android"] == {"priority": "HIGH", "ttl": "3600s", "notification": {"channelId": "promos"}}
    assert message["apns"]["payload"]["aps"] == {"sound": "default", "badge": 1, "mutable-content": 1}
    assert message["fcmOptions"] == {"analyticsLabel": "campaign_42"}
    assert message["notification"]["image"] == "https://cdn.example.com/sale.png"


def test_minimal_template_body_is_valid_and_small() -> None:
    """Only title and body: no empty platform blocks."""
    body = send_request(FcmTemplate(title="Hi", body="there"), "tok")
    assert schema_problems("SendMessageRequest", body) == []
    assert body == {"message": {"token": "tok", "notification": {"title": "Hi", "body": "there"}}}


def test_schema_check_catches_wrong_bodies() -> None:
    """The schema check itself refuses unknown fields and non-text data."""
    assert schema_problems("SendMessageRequest", {"message": {"token": "t", "nope": 1}})
    assert schema_problems("SendMessageRequest", {"message": {"token": "t", "data": {"n": 1}}})


@pytest.mark.parametrize(
    ("data", "said"),
    [({"count": 3}, "must be text"), ({"flag": True}, "must be text"), ({"from": "x"}, "reserved"),
     ({"gcm.x": "y"}, "reserved"), ({"deep_link": "y"}, "reserved"), ({"tessera_open_url": "y"}, "reserved"),
     ({"Tessera_x": "y"}, "reserved"), ("not json", "JSON object"), ('["a"]', "valid dictionary")],
)  # fmt: skip
def test_data_must_be_text_with_unreserved_keys(data: dict[str, object] | str, said: str) -> None:
    """Non-text values and reserved keys are refused with a clear message."""
    with pytest.raises(ValidationError) as caught:
        FcmTemplate.model_validate({"title": "t", "body": "b", "data": data})
    assert said in str(caught.value)


def test_template_refusals() -> None:
    """Bad TTL, priority or image address are refused."""
    bads: list[dict[str, Any]] = [
        {"android_ttl_seconds": 2_419_201},
        {"android_priority": "urgent"},
        {"image_url": "http://x"},
    ]
    for bad in bads:
        with pytest.raises(ValidationError):
            FcmTemplate.model_validate({"title": "t", "body": "b", **bad})


def test_preview_shows_android_and_ios_with_escaped_texts() -> None:
    """Both renderings, texts and image address escaped."""
    template = FcmTemplate(
        title="<script>alert(1)</script>", body="Tom & Jerry", image_url='https://x.example/a.png?"onload=1'
    )
    ctx = ChannelContext(tenant="t", config=None, sandbox=True, sandbox_url="http://x", public_url="http://x")
    html = FcmChannel().render_preview(ctx, template, ProfileSnapshot(id="p")).html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("Tom &amp; Jerry") == 2
    assert '"onload' not in html and "&quot;onload=1" in html
    assert "fcm-android" in html and "fcm-ios" in html


def test_open_url_goes_in_data_under_the_reserved_key() -> None:
    """The open-tracking address joins the template's data and deep link; the body stays valid."""
    body = send_request(FULL, "tok", "https://cdp.example.com/o/shop/1-abc")
    assert schema_problems("SendMessageRequest", body) == []
    assert body["message"]["data"] == {
        "campaign": "c42",
        "deep_link": "shop://sale",
        OPEN_URL_KEY: "https://cdp.example.com/o/shop/1-abc",
    }


def test_a_template_rendered_as_text_per_language_validates() -> None:
    """The core renders each language's fields as text: numbers and data (a JSON object) still validate."""
    rendered = {"title": "Soldes", "body": "-40 %", "data": '{"campagne": "hiver"}', "android_ttl_seconds": "3600",
                "apns_badge": "2", "android_priority": "high"}  # fmt: skip
    template = FcmTemplate.model_validate(rendered)
    assert template.data == {"campagne": "hiver"} and template.android_ttl_seconds == 3600
    assert FcmTemplate.model_validate({"title": "t", "body": "b", "data": "  "}).data == {}
    body = send_request(template, "tok")
    assert body["message"]["notification"] == {"title": "Soldes", "body": "-40 %"}
    assert body["message"]["data"] == {"campagne": "hiver"}
