"""The package is installed, announced under the ``tessera`` entry points, and its config refuses bad uploads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import pluggy
import pytest
from pydantic import BaseModel, ValidationError
from tessera_wallet_apple import testchain

from core.plugin_api import PROJECT, Channel, ChannelContext, PermanentDeliveryError, WalletChannel

NAME = "wallet_apple"


def load_plugin() -> ModuleType:
    """The module behind this plugin's entry point."""
    (entry_point,) = entry_points(group="tessera", name=NAME)
    assert entry_point.dist is not None and entry_point.dist.name == "tessera-wallet-apple"
    module: ModuleType = entry_point.load()
    return module


def registered_channels() -> list[Any]:
    """What the plugin registers through register_channels, called the way the core calls it."""
    manager = pluggy.PluginManager(PROJECT)
    manager.register(load_plugin(), name=NAME)
    found: list[Any] = []
    manager.hook.register_channels(register=found.append)
    return found


def config_cls() -> type[BaseModel]:
    """The channel's Config model, reached through the entry point."""
    config: type[BaseModel] = load_plugin().AppleWalletChannel.Config
    return config


def refusal(values: dict[str, Any]) -> tuple[str, str]:
    """The field and message of the single error a config with these values is refused with."""
    with pytest.raises(ValidationError) as caught:
        config_cls()(**values)
    (error,) = caught.value.errors()
    return ".".join(str(part) for part in error["loc"]), str(error["msg"])


def context(config: BaseModel | None) -> ChannelContext:
    """A channel context for tenant "shop" with this config."""
    return ChannelContext(
        tenant="shop",
        config=config,
        sandbox=True,
        sandbox_url="http://x",
        public_url="https://cdp.example.com/",
    )


def test_entry_point_registers_one_wallet_channel_named_like_it() -> None:
    """register_channels gives one WalletChannel whose key is the entry-point name."""
    (channel,) = registered_channels()
    assert isinstance(channel, Channel) and isinstance(channel, WalletChannel)
    assert channel.key == NAME
    capabilities = channel.capabilities
    assert (capabilities.update, capabilities.revoke, capabilities.webhooks) == (True, True, False)
    assert capabilities.address_identifier is None


def test_config_from_a_p12_reads_the_identifiers_from_the_certificate() -> None:
    """Pass type and team identifiers need not be typed: they come from the certificate's UID and OU."""
    chain = testchain.chain()
    config = config_cls()(**chain.p12_config())
    assert config.pass_type_identifier == chain.pass_type_identifier  # type: ignore[attr-defined]
    assert config.team_identifier == chain.team_identifier  # type: ignore[attr-defined]
    again = config_cls().model_validate(config.model_dump())  # how the core reloads a stored config
    assert again.pass_type_identifier == chain.pass_type_identifier  # type: ignore[attr-defined]


def test_config_from_a_pem_pair_with_matching_identifiers() -> None:
    """A PEM certificate and key work as well; identifiers that agree with the certificate are kept."""
    chain = testchain.chain()
    values = {
        **chain.pem_config(),
        "pass_type_identifier": chain.pass_type_identifier,
        "team_identifier": "TESTTEAM01",
    }
    config = config_cls()(**values)
    assert config.pass_type_identifier == chain.pass_type_identifier  # type: ignore[attr-defined]


def test_config_never_echoes_secrets() -> None:
    """The .p12, its password and the private key are SecretStr: not in repr, not in errors."""
    chain = testchain.chain()
    config = config_cls()(**chain.p12_config())
    assert chain.p12_password not in repr(config) and chain.p12_base64()[:40] not in repr(config)
    with pytest.raises(ValidationError) as caught:
        config_cls()(**{**chain.pem_config(), "private_key_pem": testchain.mismatched_key_pem()})
    assert "PRIVATE KEY-----" not in str(caught.value)


def test_an_invalid_certificate_is_refused_on_its_field() -> None:
    """Text that is no certificate: the admin is told to paste the PEM text."""
    field, message = refusal({**testchain.chain().pem_config(), "certificate_pem": "not a certificate"})
    assert field == "certificate_pem"
    assert "not a PEM certificate" in message and "-----BEGIN CERTIFICATE-----" in message


def test_a_file_that_is_no_p12_is_refused() -> None:
    """A base64 upload of something else: the admin is told how to export a .p12."""
    chain = testchain.chain()
    field, message = refusal({**chain.p12_config(), "certificate_p12": "aGVsbG8gd29ybGQ="})
    assert field == "certificate_p12" and "not a .p12" in message and "Keychain Access" in message
    field, message = refusal({**chain.p12_config(), "certificate_p12": "not base64 secret!"})
    assert field == "certificate_p12" and "base64" in message and "secret!" not in message


def test_a_wrong_p12_password_is_refused_on_the_password() -> None:
    """The password field is the one to fix."""
    field, message = refusal({**testchain.chain().p12_config(), "certificate_password": "guess"})
    assert field == "certificate_password"
    assert message.startswith("The .p12 password is wrong")


def test_a_key_that_does_not_match_the_certificate_is_refused() -> None:
    """A private key of another certificate."""
    values = {**testchain.chain().pem_config(), "private_key_pem": testchain.mismatched_key_pem()}
    field, message = refusal(values)
    assert field == "private_key_pem"
    assert "does not belong to the certificate" in message


def test_an_expired_certificate_is_refused_with_its_date() -> None:
    """Passes signed with an expired certificate are refused by Wallet; so is the upload."""
    chain = testchain.chain()
    field, message = refusal({**chain.pem_config(), "certificate_pem": testchain.expired_certificate_pem()})
    yesterday = datetime.now(UTC) - timedelta(days=1)
    assert field == "certificate_pem"
    assert f"expired on {yesterday:%Y-%m-%d}" in message and "create a new one" in message


def test_identifiers_that_disagree_with_the_certificate_are_refused() -> None:
    """A typed pass type id or team id must be the certificate's."""
    chain = testchain.chain()
    field, message = refusal({**chain.p12_config(), "pass_type_identifier": "pass.com.other.card"})
    assert field == "pass_type_identifier"
    assert "does not match the certificate" in message and chain.pass_type_identifier in message
    field, _ = refusal({**chain.p12_config(), "team_identifier": "ZZZZZZZZZZ"})
    assert field == "team_identifier"


def test_one_certificate_upload_is_required_and_only_one() -> None:
    """Neither a .p12 nor a PEM pair, a PEM certificate without its key, or both kinds: refused."""
    chain = testchain.chain()
    field, message = refusal({"wwdr_certificate_pem": chain.wwdr_pem})
    assert field == "certificate_p12" and "either the .p12" in message
    field, _ = refusal({"wwdr_certificate_pem": chain.wwdr_pem, "certificate_pem": chain.certificate_pem})
    assert field == "private_key_pem"
    field, message = refusal({**chain.p12_config(), **chain.pem_config()})
    assert "not both" in message
    field, message = refusal({**chain.p12_config(), "wwdr_certificate_pem": chain.root_pem})
    assert field == "wwdr_certificate_pem" and "did not issue" in message
    field, _ = refusal({**chain.p12_config(), "unknown": 1})
    assert field == "unknown"


def test_build_pass_gives_a_pkpass_file_named_by_serial() -> None:
    """build_pass signs with the tenant's certificate and names the file after the serial."""
    (channel,) = registered_channels()
    ctx = context(config_cls()(**testchain.chain().p12_config()))
    built = channel.build_pass(ctx, testchain.store_card(serial="ABC-123"))
    assert built.media_type == "application/vnd.apple.pkpass"
    assert built.filename == "ABC-123.pkpass"
    assert built.content.startswith(b"PK\x03\x04")
    assert channel.pass_type_identifier(ctx) == testchain.PASS_TYPE_IDENTIFIER
    assert channel.web_service_url(ctx) == "https://cdp.example.com/x/shop/wallet_apple"


def test_sandbox_config_is_the_test_chain_and_saves() -> None:
    """The demo configures sandboxed tenants with the generated test chain's .p12."""
    (channel,) = registered_channels()
    values = channel.sandbox_config()
    assert values == testchain.chain().p12_config()
    assert config_cls()(**values).team_identifier == testchain.TEAM_IDENTIFIER  # type: ignore[attr-defined]


def test_without_config_build_refuses_and_check_still_checks() -> None:
    """Unconfigured: building says where to upload the certificate; checks run with placeholder ids."""
    (channel,) = registered_channels()
    with pytest.raises(PermanentDeliveryError) as caught:
        channel.build_pass(context(None), testchain.store_card())
    assert "Settings > Plugins" in str(caught.value)
    assert channel.check_pass(context(None), testchain.store_card()) == []
    assert channel.pass_type_identifier(context(None)) is None


def test_a_send_names_the_pass_template_and_may_carry_a_notice() -> None:
    """A campaign or journey send on Apple Wallet says which pass template to issue (by key)."""
    template_cls = load_plugin().AppleWalletChannel.Template
    send = template_cls(pass_template="club_card", notice="Double points this weekend")
    assert (send.pass_template, send.notice) == ("club_card", "Double points this weekend")
    with pytest.raises(ValueError):
        template_cls(pass_template="")
    with pytest.raises(ValueError):
        template_cls(pass_template="club_card", style="storeCard")
