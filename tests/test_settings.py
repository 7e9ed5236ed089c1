"""Settings come from the environment; with none, the embedded default and a key kept on disk."""

from __future__ import annotations

import pytest

from core import crypto
from core.settings import Settings


def test_nothing_set_means_sqlite_and_the_in_process_worker(tmp_path, monkeypatch) -> None:
    for name in ("TESSERA_DATABASE_URL", "TESSERA_REDIS_URL", "TESSERA_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(data_dir=tmp_path)
    assert not settings.uses_postgres and not settings.uses_redis


def test_environment_variables_switch_to_postgres_and_redis(monkeypatch) -> None:
    monkeypatch.setenv("TESSERA_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/tessera")
    monkeypatch.setenv("TESSERA_REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("TESSERA_WORKER_THREADS", "7")
    settings = Settings()
    assert settings.uses_postgres and settings.uses_redis and settings.worker_threads == 7


def test_a_bad_value_is_refused_with_the_variable_named(monkeypatch) -> None:
    monkeypatch.setenv("TESSERA_WORKER_THREADS", "many")
    with pytest.raises(ValueError, match="worker_threads"):
        Settings()


def test_the_secret_key_is_generated_once_and_kept(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("TESSERA_SECRET_KEY", raising=False)
    first = Settings(data_dir=tmp_path).resolved_secret_key()
    again = Settings(data_dir=tmp_path).resolved_secret_key()
    assert first == again and len(first) >= 48
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0


def test_sealed_secrets_open_only_with_the_same_key(sqlite_installation, monkeypatch) -> None:
    envelope = crypto.seal("hunter2-service-account")
    assert "hunter2" not in str(envelope) and crypto.is_sealed(envelope)
    assert crypto.unseal(envelope) == "hunter2-service-account"
    monkeypatch.setenv("TESSERA_SECRET_KEY", "another-key")
    from core.settings import reset_settings

    reset_settings()
    with pytest.raises(crypto.SecretDecryptionError, match="TESSERA_SECRET_KEY"):
        crypto.unseal(envelope)
