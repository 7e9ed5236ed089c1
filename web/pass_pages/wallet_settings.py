"""A template's settings for each of its wallets (``WalletChannel.TemplateSettings``) in the editor.

Each wallet the template is issued in may ask for settings of its own (Google: the pass kind, a
gift card's currency); the editor shows them as generated inputs named ``ws.<wallet>.<setting>``
and saves them into the design's ``wallet_settings``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from core.passes.models import PassTemplate
from core.passes.wallets import wallet_channels
from web.campaign_pages.form import Problems
from web.forms import FormField, form_fields, parse_form
from web.pass_pages.design_form import WALLET_SETTING, DesignForm


@dataclass(frozen=True)
class SettingsSection:
    """One wallet's settings inputs."""

    wallet: str
    label: str
    fields: list[FormField]


def _wallets(template: PassTemplate, form: DesignForm) -> list[str]:
    """The template's own wallet and the other wallets ticked in the form."""
    return list(dict.fromkeys([template.channel, *form.other_wallets]))


def settings_sections(template: PassTemplate, form: DesignForm, problems: Problems) -> list[SettingsSection]:
    """The inputs of every wallet of the template that has settings of its own."""
    channels = wallet_channels()
    sections = []
    for wallet in _wallets(template, form):
        channel = channels.get(wallet)
        if channel is None or not channel.TemplateSettings.model_fields:
            continue
        shown = {
            name: problems.at(f"{WALLET_SETTING}{wallet}.{name}")
            for name in channel.TemplateSettings.model_fields
        }
        fields = form_fields(channel.TemplateSettings, form.wallet_settings.get(wallet, {}),
                             {name: " ".join(found) for name, found in shown.items() if found})  # fmt: skip
        for found in fields:
            found.name = f"{WALLET_SETTING}{wallet}.{found.name}"
        sections.append(SettingsSection(wallet, channel.label, fields))
    return sections


def checked_settings(
    template: PassTemplate, form: DesignForm, stored: dict[str, dict[str, str]], problems: Problems
) -> dict[str, dict[str, str]]:
    """Every wallet's settings to save: the form's, checked by the wallet (problems by input), and the
    stored ones of wallets the editor shows no inputs for."""
    channels = wallet_channels()
    saved = {wallet: dict(settings) for wallet, settings in stored.items()}
    for wallet in _wallets(template, form):
        channel = channels.get(wallet)
        if channel is None or not channel.TemplateSettings.model_fields or wallet not in form.wallet_settings:
            continue
        model = channel.TemplateSettings
        try:
            checked = model.model_validate(parse_form(model, form.wallet_settings[wallet]))
        except ValidationError as exc:
            for error in exc.errors():
                where = str(error["loc"][0]) if error["loc"] else ""
                problems.add(f"{WALLET_SETTING}{wallet}.{where}", str(error["msg"]))
            continue
        saved[wallet] = {name: str(value) for name, value in checked.model_dump(exclude_none=True).items()}
    return saved
