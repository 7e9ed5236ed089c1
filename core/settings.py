"""Configuration from the environment (``TESSERA_*``) in one typed object.

With nothing set, Tessera runs on the embedded default: SQLite files in a data folder and an
in-process worker. Pointing ``TESSERA_DATABASE_URL`` at PostgreSQL and ``TESSERA_REDIS_URL`` at
Redis switches to the production shape without any other change.
"""

from __future__ import annotations

import logging
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field, PrivateAttr, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_KEY_FILE = "secret.key"


class Settings(BaseSettings):
    """Every knob Tessera reads, with its environment variable (prefix ``TESSERA_``)."""

    model_config = SettingsConfigDict(env_prefix="TESSERA_", extra="ignore")
    _kept_key: str | None = PrivateAttr(default=None)

    data_dir: Path = Field(default=Path(".tessera"), description="Folder for SQLite files and the key.")
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL server URL (postgresql://user@host:port/control_db). Unset: SQLite.",
    )
    redis_url: str | None = Field(default=None, description="Redis URL for the queue. Unset: in-process.")
    secret_key: SecretStr | None = Field(default=None, description="Signs sessions, encrypts secrets.")
    public_url: str = Field(default="http://127.0.0.1:8000", description="Where browsers reach Tessera.")
    worker_threads: int = Field(default=4, ge=1, description="Threads per worker process.")
    job_lease_seconds: int = Field(
        default=300, ge=1, description="A running job untouched this long is retried."
    )
    sweep_interval_seconds: float = Field(default=5.0, gt=0, description="How often due work is re-enqueued.")
    processing_linger_seconds: float = Field(
        default=0.2, ge=0, description="How long event processing waits for more events once caught up."
    )
    session_max_age_seconds: int = Field(default=14 * 24 * 3600, ge=60)
    secure_cookies: bool = Field(default=False, description="Mark the session cookie Secure (HTTPS).")
    log_level: str = Field(
        default="INFO", description="Logging level of every process (DEBUG, INFO, WARNING...)."
    )
    opentelemetry: bool = Field(
        default=False,
        description="FastAPI's OpenTelemetry spans, metrics and logs of web requests, for an OpenTelemetry "
        "SDK you configure (off, they cost every request about 40 µs even with nothing exporting them).",
    )

    @property
    def logging_level(self) -> int:
        """``log_level`` as the ``logging`` module's number; INFO when the name is not a level."""
        level = logging.getLevelName(self.log_level.upper())
        return level if isinstance(level, int) else logging.INFO

    @property
    def uses_postgres(self) -> bool:
        """True when tenant and control databases live on a PostgreSQL server."""
        url = self.database_url
        return url is not None and url.split(":", 1)[0].startswith("postgres")

    @property
    def uses_redis(self) -> bool:
        """True when the queue is dramatiq on Redis rather than the in-process worker."""
        return bool(self.redis_url)

    def resolved_secret_key(self) -> str:
        """The secret key: from the environment, else generated once and kept in the data folder."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        if self._kept_key is None:  # read once: every tracked link and open address is signed with it
            self._kept_key = self._kept_secret_key()
        return self._kept_key

    def _kept_secret_key(self) -> str:
        path = self.data_dir / SECRET_KEY_FILE
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # O_EXCL so two processes starting together agree on one key.
            try:
                with open(path, "x", encoding="ascii") as handle:
                    handle.write(secrets.token_urlsafe(48))
                path.chmod(0o600)
            except FileExistsError:
                pass
        return path.read_text(encoding="ascii").strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests and the CLI change the environment)."""
    get_settings.cache_clear()
