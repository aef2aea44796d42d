"""Connection settings read from the environment (what deploy/local/stack.sh exports)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class ConnectionSettings(BaseSettings):
    """``CLR_DATABASE_URL`` and ``CLR_KAFKA_BOOTSTRAP_SERVERS``."""

    model_config = SettingsConfigDict(env_prefix="CLR_")

    database_url: str = "postgresql://postgres@127.0.0.1:55432/postgres"
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
