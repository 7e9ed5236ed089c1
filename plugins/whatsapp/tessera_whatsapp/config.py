"""A tenant's WhatsApp configuration: its business number, Meta app credentials and pacing."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class WhatsAppConfig(BaseModel):
    """A tenant's WhatsApp Business number and the credentials of its Meta app."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    phone_number_id: str = Field(pattern=r"^\d+$", description="Graph id of the sending number.")
    business_account_id: str = Field(pattern=r"^\d+$", description="WhatsApp Business Account id.")
    access_token: SecretStr = Field(description="System user access token (whatsapp_business_messaging).")
    app_secret: SecretStr = Field(description="The Meta app's secret, to check webhook signatures.")
    webhook_verify_token: SecretStr = Field(description="Any string; give Meta the same one.")
    api_version: str = Field(default="v23.0", pattern=r"^v\d+\.\d+$")
    api_url: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        description="A private gateway instead of graph.facebook.com.",
    )
    messages_per_second: int = Field(
        default=80, ge=1, le=1000, description="This process's share of the number's throughput."
    )
