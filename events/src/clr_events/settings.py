"""Connection settings read from the environment (what deploy/local/stack.sh exports)."""

from __future__ import annotations

import ssl
from datetime import date
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from clr_events.months import add_months


class ConnectionSettings(BaseSettings):
    """Where PostgreSQL and Kafka are, who we are to Kafka, and the installation's name.

    ``CLR_INSTANCE`` (empty by default) prefixes every topic and consumer group name, so
    two installations (say the test suite and a running demo) can share one Kafka without
    reading each other's events or joining each other's groups.

    Kafka authentication: ``CLR_KAFKA_SECURITY_PROTOCOL`` (``PLAINTEXT`` by default, so a
    broker without authentication needs nothing), ``CLR_KAFKA_SASL_MECHANISM`` and the
    principal's ``CLR_KAFKA_USERNAME`` / ``CLR_KAFKA_PASSWORD``; with TLS, the broker's
    certificate is checked against the system's CAs or ``CLR_KAFKA_SSL_CAFILE``. Every
    Kafka client of the project is built with :meth:`kafka_options`, so each process
    connects as one principal.
    """

    model_config = SettingsConfigDict(env_prefix="CLR_")

    database_url: str = "postgresql://postgres@127.0.0.1:55432/postgres"
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_username: str = ""
    kafka_password: SecretStr = SecretStr("")
    kafka_ssl_cafile: str = ""
    instance: str = ""
    consumer_fetch_max_wait_ms: int = Field(default=50, ge=10, le=5000)
    """``CLR_CONSUMER_FETCH_MAX_WAIT_MS``: how long the broker may hold a consumer group's
    fetch to gather ``consumer_fetch_min_bytes``. A steady stream then comes a few dozen
    events per fetch, not one: each event costs the consumer, PostgreSQL and the broker a
    fraction of a fetch and a transaction (measured in bench/README.md), for at most this
    much more latency on the read side when traffic is light (``CLR_CONSUMER_FETCH_MIN_BYTES``
    1: each event at once)."""
    consumer_fetch_min_bytes: int = Field(default=65536, ge=1)
    """``CLR_CONSUMER_FETCH_MIN_BYTES``: the data a fetch waits for (up to the wait above)."""
    schema_base_url: str = "http://127.0.0.1:8100/schemas"
    """``CLR_SCHEMA_BASE_URL``: where the projections service serves the JSON Schemas, the
    base of every event's ``dataschema`` (``<base>/<context>/<Name>.v<N>.json``)."""

    def topic(self, name: str) -> str:
        """A topic or consumer group name in this installation."""
        return f"{self.instance}.{name}" if self.instance else name

    def kafka_options(self) -> dict[str, Any]:
        """The keyword arguments every aiokafka client (producer, consumer, admin) is built
        with: the bootstrap servers and, when configured, TLS and the SASL principal."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.kafka_bootstrap_servers,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = ssl.create_default_context(
                cafile=self.kafka_ssl_cafile or None
            )
        if self.kafka_security_protocol.startswith("SASL_"):
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_username
            options["sasl_plain_password"] = self.kafka_password.get_secret_value()
        return options

    def consumer_fetch_options(self) -> dict[str, Any]:
        """The fetch options of a consumer in a group (not of readers of history or of a
        topic's tail, which want what is there at once)."""
        return {
            "fetch_max_wait_ms": self.consumer_fetch_max_wait_ms,
            "fetch_min_bytes": self.consumer_fetch_min_bytes,
        }

    def as_principal(self, username: str, password: str) -> ConnectionSettings:
        """The same connection as another Kafka principal."""
        return self.model_copy(
            update={"kafka_username": username, "kafka_password": SecretStr(password)}
        )


class RenewalWindows(BaseSettings):
    """R10 for a label decision recorded before decisions carried their renewal deadline:
    the renewal window of each level, in months after ``valid_until``
    (``CLR_RENEWAL_WINDOW_MONTHS_BRONZE|SILVER|GOLD``; 12 by default, the decision
    policy's: R4, R5; Gold's is unconfirmed, R8). One home for every service that shows
    a label's status (collaboration's profiles, the projections), so they agree on such a
    label: in its renewal window, not expired. A decision that carries its deadline is
    read as it is; every decision is label_decisions' alone.
    """

    model_config = SettingsConfigDict(env_prefix="CLR_RENEWAL_WINDOW_MONTHS_")

    bronze: int = Field(default=12, ge=0)
    silver: int = Field(default=12, ge=0)
    gold: int = Field(default=12, ge=0)

    def months(self, level: str) -> int:
        """The renewal window of a level (an unknown level: 12 months)."""
        window: int = getattr(self, level.lower(), 12)
        return window

    def deadline(self, level: str, valid_until: date, recorded: date | None) -> date:
        """The renewal deadline the decision recorded, or else the level's window's."""
        return recorded if recorded is not None else add_months(valid_until, self.months(level))
