"""A tenant's WhatsApp configuration: its business number, Meta app credentials, pacing and opt-out words."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

# Words that, sent alone, mean "stop messaging me", by language. STOP always counts (see inbound.py).
# Not CANCEL: alone it often answers a booking reminder rather than the marketing.
DEFAULT_OPT_OUT_WORDS = {
    "en": ["STOP", "STOPALL", "UNSUBSCRIBE", "STOP PROMOTIONS", "OPT OUT", "QUIT"],
    "fr": ["ARRET", "ARRÊT", "STOP PUB", "DESABONNER", "DÉSABONNER"],
    "de": ["STOPP", "ABMELDEN", "ABBESTELLEN"],
    "es": ["BAJA", "PARAR", "CANCELAR SUSCRIPCIÓN"],
    "pt": ["PARAR", "SAIR", "DESCADASTRAR"],
    "it": ["ANNULLA", "BASTA", "DISISCRIVIMI"],
    "nl": ["AFMELDEN", "UITSCHRIJVEN"],
}


def _default_words() -> str:
    words = dict.fromkeys(word for group in DEFAULT_OPT_OUT_WORDS.values() for word in group)
    return ", ".join(words)


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
        default=80,
        ge=1,
        le=1000,
        description="The number's whole throughput at Meta (80 by default, up to 1000 once upgraded), "
        "shared by every worker process.",
    )
    opt_out_words: str = Field(
        default_factory=_default_words,
        max_length=2000,
        description="Comma-separated replies that opt a customer out of marketing when sent alone "
        "(any case or accents). STOP always does.",
    )

    def opt_out_list(self) -> list[str]:
        """The configured opt-out words, without blanks."""
        return [word.strip() for word in self.opt_out_words.split(",") if word.strip()]
