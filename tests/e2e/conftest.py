"""The whole system, started as separate processes against the real PostgreSQL and Kafka.

Each session gets its own database and its own installation prefix (``CLR_INSTANCE``), so
the services' stores, topics and consumer groups start empty and a running demo on the
same Kafka is left alone; the session's topics are deleted at the end.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiokafka import ConsumerRecord

from clr_dev import supervisor
from clr_dev.installation import install, service_env, uninstall
from clr_events.codec import from_kafka
from clr_events.envelope import Envelope
from clr_events.service.auth import AuthSettings, mint
from clr_events.settings import ConnectionSettings
from tests.integration.events.kafka_helpers import read_topic

PORT_BASE = int(os.environ.get("CLR_E2E_PORT_BASE", "18100"))
"""The session's services listen on PORT_BASE + their default port's last two digits (so
two checkouts can run the suite side by side on one machine)."""
PORTS = {name: PORT_BASE + port % 100 for name, port in supervisor.SERVICES.items()}


@dataclass
class System:
    """The running services and what a test needs to talk to them."""

    urls: dict[str, str]
    client: httpx.AsyncClient
    kafka: str
    secret: str
    instance: str
    database_url: str

    def kafka_options(self) -> dict[str, Any]:
        """aiokafka client options, as the environment's Kafka principal (the admin)."""
        return ConnectionSettings(kafka_bootstrap_servers=self.kafka).kafka_options()

    def topic(self, name: str) -> str:
        """A declared topic's name in this session's installation."""
        return f"{self.instance}.{name}"

    def auth(self, *roles: str, sub: str = "e2e") -> dict[str, str]:
        """Headers with a bearer token holding ``roles``."""
        settings = AuthSettings(secret=self.secret)
        return {"Authorization": f"Bearer {mint(sub, list(roles), settings)}"}

    async def post(self, service: str, path: str, body: Any, *roles: str) -> httpx.Response:
        """A command; headers carry a token with ``roles``."""
        return await self.client.post(
            self.urls[service] + path, json=body, headers=self.auth(*roles)
        )

    async def get(self, service: str, path: str, *roles: str) -> httpx.Response:
        """A read, with a token only when ``roles`` are given."""
        headers = self.auth(*roles) if roles else {}
        return await self.client.get(self.urls[service] + path, headers=headers)

    async def until(
        self, check: Callable[[], Awaitable[Any]], what: str, timeout: float = 60.0
    ) -> Any:
        """Poll ``check`` until it returns something truthy."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = await check()
            if found:
                return found
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.3)

    async def records(
        self,
        topic: str,
        keep: Callable[[ConsumerRecord[bytes, bytes]], bool],
        *,
        at_least: int = 1,
        timeout: float = 60.0,
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """The records on ``topic`` that ``keep`` accepts, from offset zero, once there are
        ``at_least`` of them (or what there is at the timeout)."""
        return await read_topic(self.kafka, self.topic(topic), at_least, timeout, keep)

    async def events(
        self, topic: str, subject_prefix: str, *, at_least: int, timeout: float = 60.0
    ) -> list[Envelope]:
        """The envelopes on ``topic`` whose subject (the key) starts with the prefix."""
        prefix = subject_prefix.encode()
        records = await self.records(
            topic, lambda r: (r.key or b"").startswith(prefix), at_least=at_least, timeout=timeout
        )
        return [from_kafka(r.key, r.value, r.headers) for r in records]


@dataclass(frozen=True)
class Running:
    """What the session started."""

    urls: dict[str, str]
    secret: str
    instance: str
    database_url: str


@pytest.fixture(scope="session")
def running_system(
    database_url: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """Every service as its own process, on a fresh database and fresh topics."""
    base = ConnectionSettings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap)
    settings = asyncio.run(install(base, "clr_e2e"))
    secret = secrets.token_hex(32)
    running = supervisor.start(
        tmp_path_factory.mktemp("service-logs"),
        ports=PORTS,
        env=service_env(settings, secret),
    )
    try:
        yield Running(running.urls, secret, settings.instance, settings.database_url)
    finally:
        running.stop()
        asyncio.run(uninstall(base, settings))


@pytest.fixture
async def system(running_system: Running, kafka_bootstrap: str) -> AsyncIterator[System]:
    """The running system with a client."""
    r = running_system
    async with httpx.AsyncClient(timeout=30.0) as client:
        yield System(r.urls, client, kafka_bootstrap, r.secret, r.instance, r.database_url)
