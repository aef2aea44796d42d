"""``/readyz`` names each dependency a service needs that is away, with the reason."""

from __future__ import annotations

import socket

import asyncpg
import httpx
from fastapi import FastAPI

from clr_events.kafka.probe import KafkaProbe
from clr_events.pg import Pool
from clr_events.service.runtime import Runtime, ServiceSettings, create_app


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Started(Runtime):
    """A runtime on a given pool, with the Kafka probe a publishing service has."""

    def __init__(self, pool: Pool, kafka: KafkaProbe | None) -> None:
        super().__init__("readiness", settings=ServiceSettings(background=False))
        self._pool = pool
        self._kafka_probe = kafka

    async def start(self) -> None:
        """Started already."""

    async def stop(self) -> None:
        """The test closes what it made."""


def app_of(runtime: Runtime) -> FastAPI:
    return create_app(runtime, title="t", description="", routers=[])


async def readyz(app: FastAPI) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get("/readyz")


async def test_ready_when_postgresql_and_kafka_answer(pool: Pool, kafka_bootstrap: str) -> None:
    probe = KafkaProbe(ServiceSettings(kafka_bootstrap_servers=kafka_bootstrap))
    try:
        answer = await readyz(app_of(Started(pool, probe)))
    finally:
        await probe.close()
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "ready"}


async def test_a_broker_away_makes_the_service_unready_with_the_reason(pool: Pool) -> None:
    away = ServiceSettings(kafka_bootstrap_servers=f"127.0.0.1:{closed_port()}")
    probe = KafkaProbe(away, timeout=2.0)
    try:
        app = app_of(Started(pool, probe))
        answer = await readyz(app)
        again = await readyz(app)  # within a second: the cached answer, no new attempt
    finally:
        await probe.close()
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"] == "1"
    assert set(answer.json()["unready"]) == {"kafka"}
    assert "Kafka cluster unreachable" in answer.json()["unready"]["kafka"]
    assert again.json() == answer.json()


async def test_a_database_away_makes_the_service_unready_with_the_reason() -> None:
    away = await asyncpg.create_pool(
        f"postgresql://postgres@127.0.0.1:{closed_port()}/postgres", min_size=0, max_size=1
    )
    assert away is not None
    try:
        answer = await readyz(app_of(Started(away, None)))
    finally:
        away.terminate()
    assert answer.status_code == 503
    assert set(answer.json()["unready"]) == {"postgresql"}
    assert "ConnectionRefusedError" in answer.json()["unready"]["postgresql"]
