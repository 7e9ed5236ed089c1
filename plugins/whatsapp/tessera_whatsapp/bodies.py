"""The Cloud API request bodies for template, text and media messages (``POST .../messages``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MEDIA_KINDS = ("image", "video", "document", "audio")
UNTRACKED: dict[str, Any] = {"track_links": False}  # the core leaves these fields' links alone
Kind = Literal["template", "text", "image", "video", "document", "audio"]


def _lines(value: Any) -> Any:
    """Parameter lists arrive from the core as one rendered text: one value per line."""
    if isinstance(value, str):
        return [line.strip() for line in value.splitlines() if line.strip()]
    return value


class WhatsAppTemplate(BaseModel):
    """A WhatsApp message: an approved template with its parameters, or free-form text or media.

    Every field is a text the core personalizes before sending; parameter lists hold one value a
    line. Free-form kinds (text, media) only reach people inside their 24-hour window.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Kind = Field(default="template", description="template, text, image, video, document or audio.")
    template_name: str | None = Field(
        default=None, pattern=r"^[a-z0-9_]+$", max_length=512, description="An approved template's name."
    )
    language: str = Field(default="en_US", pattern=r"^[a-z]{2,3}(_[A-Za-z]{2,4})?$")
    header_text: str | None = Field(default=None, max_length=60, description="The header's {{1}} value.")
    # Links Meta fetches, and button values it appends to the template's approved URL, stay as
    # written: the core must not turn them into its click-tracking redirects.
    header_media_url: str | None = Field(
        default=None, description="Link of the header's image/video/document.", json_schema_extra=UNTRACKED
    )
    header_media_type: Literal["image", "video", "document"] = "image"
    body_parameters: list[str] = Field(default_factory=list, description="{{1}}, {{2}}... one per line.")
    button_parameters: list[str] = Field(
        default_factory=list,
        description="One line per button, by position: 'url:<suffix>' or 'quick_reply:<payload>'.",
        json_schema_extra=UNTRACKED,
    )
    text: str | None = Field(default=None, max_length=4096, description="Free-form text (kind text).")
    media_url: str | None = Field(
        default=None, description="Link of the media (media kinds).", json_schema_extra=UNTRACKED
    )
    caption: str | None = Field(default=None, max_length=1024, description="Caption of image/video/document.")

    _split = field_validator("body_parameters", "button_parameters", mode="before")(_lines)

    @model_validator(mode="after")
    def _needs_what_its_kind_sends(self) -> WhatsAppTemplate:
        if self.kind == "template" and not self.template_name:
            raise ValueError("A template message needs template_name.")
        if self.kind == "text" and not (self.text or "").strip():
            raise ValueError("A text message needs text.")
        if self.kind in MEDIA_KINDS and not self.media_url:
            raise ValueError(f"A {self.kind} message needs media_url.")
        for line in self.button_parameters:
            if line.partition(":")[0] not in ("url", "quick_reply"):
                raise ValueError(f"Button parameter {line!r} must start with 'url:' or 'quick_reply:'.")
        return self


def _button(index: int, line: str) -> dict[str, Any]:
    sub_type, _, value = line.partition(":")
    parameter = (
        {"type": "text", "text": value} if sub_type == "url" else {"type": "payload", "payload": value}
    )
    return {"type": "button", "sub_type": sub_type, "index": str(index), "parameters": [parameter]}


def template_components(template: WhatsAppTemplate) -> list[dict[str, Any]]:
    """The ``components`` of a template message: header, body and button parameters."""
    components: list[dict[str, Any]] = []
    if template.header_media_url:
        kind = template.header_media_type
        components.append(
            {"type": "header", "parameters": [{"type": kind, kind: {"link": template.header_media_url}}]}
        )
    elif template.header_text:
        components.append({"type": "header", "parameters": [{"type": "text", "text": template.header_text}]})
    if template.body_parameters:
        parameters = [{"type": "text", "text": value} for value in template.body_parameters]
        components.append({"type": "body", "parameters": parameters})
    components.extend(_button(index, line) for index, line in enumerate(template.button_parameters))
    return components


def message_body(to: str, template: WhatsAppTemplate) -> dict[str, Any]:
    """The JSON body sending ``template`` to the WhatsApp id ``to``."""
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to}
    body["type"] = template.kind
    if template.kind == "template":
        payload: dict[str, Any] = {"name": template.template_name, "language": {"code": template.language}}
        components = template_components(template)
        if components:
            payload["components"] = components
        body["template"] = payload
    elif template.kind == "text":
        body["text"] = {"preview_url": "http" in (template.text or ""), "body": template.text}
    else:
        media: dict[str, Any] = {"link": template.media_url}
        if template.caption and template.kind != "audio":  # audio takes no caption
            media["caption"] = template.caption
        body[template.kind] = media
    return body


def with_url_suffixes(template: WhatsAppTemplate, bases: dict[int, str]) -> WhatsAppTemplate:
    """``template`` with each URL button's full URL cut to what follows its approved base.

    Meta's dynamic URL button is ``<base>{{1}}`` and takes only the ``{{1}}`` part; a value that
    does not start with the base is sent as given (Meta then says what is wrong).
    """
    lines = []
    for index, line in enumerate(template.button_parameters):
        kind, _, value = line.partition(":")
        base = bases.get(index)
        if kind == "url" and base and value.startswith(base) and len(value) > len(base):
            line = f"url:{value.removeprefix(base)}"
        lines.append(line)
    return template.model_copy(update={"button_parameters": lines})
