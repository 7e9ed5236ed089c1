"""The notification a marketer writes (:class:`FcmTemplate`) and the FCM v1 request body made from it.

Texts arrive already personalized and in the recipient's language: the core renders the template
per language before ``deliver``, each field as text (so ``data`` may arrive as a JSON object in
text). The body carries the delivery's open-tracking address in ``data`` for the app to call when
the notification is opened (``docs/push-open-tracking.md``). Field names are sent in the discovery document's lowerCamelCase,
which FCM's proto3 JSON parser accepts like the snake_case of Firebase's guides.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

TOKEN_TYPE = "fcm_token"  # the identifier type holding a profile's registration tokens
MAX_TTL = 2_419_200  # seconds: FCM keeps a message at most 4 weeks
UNTRACKED: dict[str, Any] = {"track_links": False}  # the core leaves these fields' links alone
DEEP_LINK_KEY = "deep_link"  # the data key apps read the link from (FCM has no platform-neutral field)
OPEN_URL_KEY = "tessera_open_url"  # the data key apps read the open-tracking address from
# FCM's own keys and prefixes, and ours: "tessera_" keeps room for what Tessera adds later.
RESERVED_PREFIXES = ("google", "gcm", "tessera_")
RESERVED_KEYS = frozenset({"from", "message_type", "notification", DEEP_LINK_KEY})


class FcmTemplate(BaseModel):
    """One push notification, as a marketer writes it, with optional Android and iOS overrides."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=1000)
    # Links stay as written (UNTRACKED): the phone fetches the image, the app reads the data and the
    # deep link (a universal link must reach the app's own domain); opens are tracked by open_url.
    image_url: str | None = Field(
        default=None, pattern=r"^https://\S+$", description="An https image.", json_schema_extra=UNTRACKED
    )
    data: dict[str, Any] = Field(
        default_factory=dict,
        description="Key/value pairs (text) the app receives.",
        json_schema_extra=UNTRACKED,
    )
    deep_link: str | None = Field(
        default=None, description="Where a tap opens the app or page.", json_schema_extra=UNTRACKED
    )
    analytics_label: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9\-_.~%]{1,50}$")
    android_priority: Literal["normal", "high"] | None = None
    android_channel_id: str | None = Field(default=None, max_length=100)
    android_ttl_seconds: int | None = Field(default=None, ge=0, le=MAX_TTL)
    apns_sound: str | None = Field(default=None, max_length=100, description="e.g. 'default'.")
    apns_badge: int | None = Field(default=None, ge=0)

    @field_validator("data", mode="before")
    @classmethod
    def _json_text(cls, value: Any) -> Any:
        """Per-language texts arrive as text: a JSON object (or nothing) stands for the pairs."""
        if not isinstance(value, str):
            return value
        if not value.strip():
            return {}
        try:
            parsed = json.loads(value)
        except ValueError:
            raise ValueError(
                'data must be key/value pairs: as text, a JSON object such as {"order": "42"}'
            ) from None
        return parsed

    @field_validator("data")
    @classmethod
    def _text_only(cls, value: dict[str, Any]) -> dict[str, Any]:
        """FCM data values are text, and some keys are FCM's own."""
        for key, item in value.items():
            if not isinstance(item, str):
                raise ValueError(
                    f"data['{key}'] must be text: FCM only carries text values "
                    f'(write "{item}" in quotes, or encode it as JSON text).'
                )
            if key in RESERVED_KEYS or key.lower().startswith(RESERVED_PREFIXES):
                raise ValueError(
                    f"data key '{key}' is reserved (by FCM, or by Tessera for the deep link and "
                    "keys starting with tessera_): rename it."
                )
        return value


def send_request(template: FcmTemplate, token: str, open_url: str | None = None) -> dict[str, Any]:
    """The ``SendMessageRequest`` body that sends ``template`` to one registration token.

    ``open_url``, the delivery's open-tracking address, travels in ``data`` for the app.
    """
    notification: dict[str, Any] = {"title": template.title, "body": template.body}
    if template.image_url:
        notification["image"] = template.image_url
    message: dict[str, Any] = {"token": token, "notification": notification}
    data = dict(template.data)
    if template.deep_link:
        data[DEEP_LINK_KEY] = template.deep_link
    if open_url:
        data[OPEN_URL_KEY] = open_url
    if data:
        message["data"] = data
    android = _android(template)
    if android:
        message["android"] = android
    apns = _apns(template)
    if apns:
        message["apns"] = apns
    if template.analytics_label:
        message["fcmOptions"] = {"analyticsLabel": template.analytics_label}
    return {"message": message}


def for_token(request: dict[str, Any], token: str) -> dict[str, Any]:
    """The same ``SendMessageRequest`` addressed to another registration token (shallow copy)."""
    return {**request, "message": {**request["message"], "token": token}}


def _android(template: FcmTemplate) -> dict[str, Any]:
    android: dict[str, Any] = {}
    if template.android_priority:
        android["priority"] = template.android_priority.upper()
    if template.android_ttl_seconds is not None:
        android["ttl"] = f"{template.android_ttl_seconds}s"
    if template.android_channel_id:
        android["notification"] = {"channelId": template.android_channel_id}
    return android


def _apns(template: FcmTemplate) -> dict[str, Any]:
    aps: dict[str, Any] = {}
    if template.apns_sound:
        aps["sound"] = template.apns_sound
    if template.apns_badge is not None:
        aps["badge"] = template.apns_badge
    if template.image_url:
        aps["mutable-content"] = 1  # lets the app's notification service extension fetch the image
    apns: dict[str, Any] = {"payload": {"aps": aps}} if aps else {}
    if template.image_url:
        apns["fcmOptions"] = {"image": template.image_url}  # iOS shows the image only when asked here
    return apns
