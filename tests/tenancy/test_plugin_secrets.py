"""Plugin secrets are write-only: sealed at rest, opened only for the channel, never shown back.

A channel config field typed ``SecretStr`` (here push_fcm's ``service_account_json``) is stored
encrypted in the control database, so neither a raw SQL read nor the database file reveals it;
the channel gets it decrypted; the API and the settings page only say that one is set; saving
the config again without the secret keeps the stored one. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text
from tessera_push_fcm.testkeys import test_service_account

from core.crypto import SecretDecryptionError
from core.db.engines import control_engine, control_session
from core.plugins import get_host
from core.settings import reset_settings
from core.tenancy.onboarding import NewTenant
from core.tenancy.plugin_settings import channel_config
from core.tenancy.tenants import get_tenant
from tests.support import bearer, csrf_of, login

PRIVATE_KEY = test_service_account()["private_key"]  # a real key: the channel refuses one it cannot read
KEY_FRAGMENT = PRIVATE_KEY.splitlines()[1]  # a line of the key's base64, to look for
CLIENT_EMAIL = "quokka-sender@acme-app.iam.gserviceaccount.com"
SECRET = json.dumps({"type": "service_account", "client_email": CLIENT_EMAIL, "private_key": PRIVATE_KEY})
MASK = "**********"
CONFIG_URL = "/api/v1/channels/push_fcm/config"


@pytest.fixture
def acme(installation) -> NewTenant:
    return installation.tenant("acme")


def client_that_saved_the_secret(installation, acme: NewTenant) -> TestClient:
    """A client whose first act is saving push_fcm's config with the secret."""
    client = installation.client()
    saved = client.put(
        CONFIG_URL,
        json={"project_id": "acme-app", "service_account_json": SECRET},
        headers=bearer(acme.api_token),
    )
    assert saved.status_code == 200, saved.text
    return client


@pytest.fixture
def client(installation, acme) -> TestClient:
    return client_that_saved_the_secret(installation, acme)


def stored_secret() -> str:
    """The secret as the channel gets it: decrypted."""
    with control_session() as session:
        config = channel_config(session, get_tenant(session, "acme"), get_host(), "push_fcm")
    assert config is not None
    return config.service_account_json.get_secret_value()


def stored_project_id() -> str:
    with control_session() as session:
        config = channel_config(session, get_tenant(session, "acme"), get_host(), "push_fcm")
    assert config is not None
    return config.project_id


def control_database_text() -> str:
    """Every row of every table of the control database, as plain SQL returns it."""
    engine = control_engine()
    dumped = []
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                dumped.append(repr(tuple(row)))
    return "\n".join(dumped)


def test_the_secret_is_sealed_at_rest(client) -> None:
    with control_engine().connect() as conn:
        (raw,) = conn.execute(text("SELECT config FROM plugin_setting WHERE plugin = 'push_fcm'")).one()
    config = json.loads(raw) if isinstance(raw, str) else raw
    assert config["push_fcm"]["project_id"] == "acme-app"
    sealed = config["push_fcm"]["service_account_json"]
    assert set(sealed) == {"$enc"}

    everything = control_database_text()
    for fragment in [PRIVATE_KEY, KEY_FRAGMENT, CLIENT_EMAIL, "quokka-sender"]:
        assert fragment not in everything


def test_the_sqlite_files_do_not_contain_the_secret(sqlite_installation) -> None:
    client_that_saved_the_secret(sqlite_installation, sqlite_installation.tenant("acme"))
    control_engine().dispose()  # checkpoint the write-ahead log into the file
    files = {path: path.read_bytes() for path in sqlite_installation.data_dir.rglob("*") if path.is_file()}
    assert any(b"acme-app" in data for data in files.values())  # the config itself is on disk
    for path, data in files.items():
        assert KEY_FRAGMENT.encode() not in data, path
        assert b"quokka-sender" not in data, path


def test_the_channel_gets_the_secret_decrypted(client) -> None:
    assert stored_secret() == SECRET
    assert stored_project_id() == "acme-app"


def test_the_api_only_says_a_secret_is_set(client, acme) -> None:
    shown = client.get(CONFIG_URL, headers=bearer(acme.api_token))
    assert shown.status_code == 200
    assert shown.json() == {
        "project_id": "acme-app",
        "service_account_json": MASK,
        "concurrency": 64,
        "api_url": None,
    }
    audit = client.get("/api/v1/audit?action=plugin.config", headers=bearer(acme.api_token))
    assert audit.json()[0]["detail"] == {"fields": ["project_id", "service_account_json"]}
    assert KEY_FRAGMENT not in audit.text and "quokka" not in audit.text


@pytest.mark.parametrize("blank", ["", None])
def test_saving_with_a_blank_secret_keeps_the_stored_one(client, acme, blank) -> None:
    answer = client.put(
        CONFIG_URL,
        json={"project_id": "acme-app-2", "service_account_json": blank},
        headers=bearer(acme.api_token),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "project_id": "acme-app-2",
        "service_account_json": MASK,
        "concurrency": 64,
        "api_url": None,
    }
    assert stored_secret() == SECRET
    assert stored_project_id() == "acme-app-2"


def test_saving_with_the_secret_omitted_keeps_the_stored_one(client, acme) -> None:
    answer = client.put(CONFIG_URL, json={"project_id": "acme-app-3"}, headers=bearer(acme.api_token))
    assert answer.status_code == 200, answer.text
    assert stored_secret() == SECRET
    assert stored_project_id() == "acme-app-3"


def test_saving_a_new_secret_replaces_the_old_one(client, acme) -> None:
    new = json.dumps({"client_email": "other@acme-app.iam.gserviceaccount.com", "private_key": PRIVATE_KEY})
    answer = client.put(
        CONFIG_URL,
        json={"project_id": "acme-app", "service_account_json": new},
        headers=bearer(acme.api_token),
    )
    assert answer.status_code == 200
    assert stored_secret() == new


def test_a_blank_secret_is_not_enough_when_none_is_stored(installation, acme) -> None:
    client = installation.client()
    answer = client.put(
        CONFIG_URL,
        json={"project_id": "acme-app", "service_account_json": ""},
        headers=bearer(acme.api_token),
    )
    assert answer.status_code == 422
    assert "service_account_json" in answer.json()["detail"]["problems"]


def test_the_settings_page_never_shows_the_secret(client, acme) -> None:
    login(client, acme.admin.email)
    page = client.get("/t/acme/settings/plugins")
    assert page.status_code == 200
    assert 'value="acme-app"' in page.text
    assert "stored — leave blank to keep" in page.text
    for fragment in [KEY_FRAGMENT, "quokka-sender", MASK]:
        assert fragment not in page.text


def test_the_settings_form_keeps_the_secret_when_left_blank(client, acme) -> None:
    login(client, acme.admin.email)
    form = {
        "project_id": "acme-app-ui",
        "service_account_json": "",
        "csrf_token": csrf_of(client, "/t/acme/settings/plugins"),
    }
    answer = client.post(
        "/t/acme/settings/channels/push_fcm/config", data=form, headers={"HX-Request": "true"}
    )
    assert answer.status_code == 200
    assert "Configuration saved." in answer.text
    assert KEY_FRAGMENT not in answer.text
    assert stored_secret() == SECRET
    assert stored_project_id() == "acme-app-ui"


def test_a_secret_sealed_under_another_key_cannot_be_opened(client, acme, monkeypatch) -> None:
    monkeypatch.setenv("TESSERA_SECRET_KEY", "a-different-installation-key")
    reset_settings()
    with pytest.raises(SecretDecryptionError, match="TESSERA_SECRET_KEY"):
        stored_secret()
    # The API still answers: it never needs to open the secret to say that one is set.
    shown = client.get(CONFIG_URL, headers=bearer(acme.api_token))
    assert shown.json()["service_account_json"] == MASK
