"""Connection settings read from the environment (what deploy/local/stack.sh exports)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class ConnectionSettings(BaseSettings):
    """``CLR_DATABASE_URL``, ``CLR_KAFKA_BOOTSTRAP_SERVERS`` and ``CLR_INSTANCE``.

    ``CLR_INSTANCE`` (empty by default) prefixes every topic and consumer group name, so
    two installations (say the test suite and a running demo) can share one Kafka without
    reading each other's events or joining each other's groups.
    """

    model_config = SettingsConfigDict(env_prefix="CLR_")

    database_url: str = "postgresql://postgres@127.0.0.1:55432/postgres"
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    instance: str = ""

    def topic(self, name: str) -> str:
        """A topic or consumer group name in this installation."""
        return f"{self.instance}.{name}" if self.instance else name
