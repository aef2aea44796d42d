"""One trace from the HTTP command to the read model, on the real PostgreSQL and Kafka.

Three services run in this process (collaboration, assessments, projections: their apps,
relays, consumers and faust agents, on an installation of their own), tracing into the
SDK's in-memory exporter. A command that continues a caller's ``traceparent`` is followed
through its store, its relay, a consumer in another service and a read model.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from assessments.service import build as assessments
from clr_dev.installation import install, service_env, uninstall
from clr_events.codec import from_kafka
from clr_events.observability import tracing
from clr_events.service.auth import AuthSettings, mint
from clr_events.settings import ConnectionSettings
from collaboration.service import build as collaboration
from projections.service import build as projections
from tests.e2e import scenario
from tests.integration.events.kafka_helpers import read_topic

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
CALLER = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


@pytest.fixture
async def installation(
    database_url: str, kafka_bootstrap: str
) -> AsyncIterator[ConnectionSettings]:
    base = ConnectionSettings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap)
    settings = await install(base, "clr_trace")
    try:
        yield settings
    finally:
        await uninstall(base, settings)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure("tests", {}, exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.disable()


def of_trace(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    """The finished spans of the caller's trace, by name."""
    return {
        span.name: span
        for span in exporter.get_finished_spans()
        if format(span.context.trace_id, "032x") == TRACE_ID
    }


def parent_of(span: ReadableSpan) -> str:
    assert span.parent is not None, span.name
    return format(span.parent.span_id, "016x")


def id_of(span: ReadableSpan) -> str:
    return format(span.context.span_id, "016x")


async def test_one_trace_shows_command_store_relay_consumer_and_read_model(
    installation: ConnectionSettings,
    spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    kafka_bootstrap: str,
) -> None:
    # given the three services in this process, tracing into memory
    secret = secrets.token_hex(32)
    for name, value in service_env(installation, secret).items():
        monkeypatch.setenv(name, value)
    apps = [collaboration(), assessments(), projections()]
    async with asyncio.timeout(240), contextlib.AsyncExitStack() as running:
        for app in apps:
            await running.enter_async_context(app.router.lifespan_context(app))

        # when an organisation is registered by a caller that is tracing
        token = mint("tracer", ["collaboration_admin"], AuthSettings(secret=secret))
        body = {
            "org_id": "org-traced",
            "name": "Traced cluster",
            "country": "DE",
            "sector": "Advanced manufacturing",
            "website": "https://traced.example.eu",
            "figures": scenario.figures(),
        }
        transport = httpx.ASGITransport(app=apps[0])
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.post(
                "/organisations",
                json=body,
                headers={"Authorization": f"Bearer {token}", "traceparent": CALLER},
            )
        assert response.status_code == 201, response.text

        # then the relay, the other service's consumer and the read model join its trace
        topic = installation.topic("collaboration.events")
        wanted = {
            "POST /organisations",
            f"publish {topic}",
            f"process {topic}",
            "project organisations",
        }
        deadline = asyncio.get_running_loop().time() + 90
        while not wanted <= set(of_trace(spans)):
            assert asyncio.get_running_loop().time() < deadline, sorted(of_trace(spans))
            await asyncio.sleep(0.5)

    trace = of_trace(spans)
    command = trace["POST /organisations"]
    assert command.kind is SpanKind.SERVER and parent_of(command) == CALLER_SPAN
    # the events carry the command's context: relay, consumer and projection are its children
    for name, kind in (
        (f"publish {topic}", SpanKind.PRODUCER),
        (f"process {topic}", SpanKind.CONSUMER),
        ("project organisations", SpanKind.CONSUMER),
    ):
        assert trace[name].kind is kind
        assert parent_of(trace[name]) == id_of(command), name
    attributes = trace[f"process {topic}"].attributes or {}
    assert attributes["messaging.consumer.group.name"] == installation.topic(
        "assessments.reference"
    )

    # and the context is in the stored event's metadata and on the Kafka record
    conn = await asyncpg.connect(installation.database_url)
    try:
        # the installation's first event: the registration
        metadata = await conn.fetchval(
            "SELECT metadata FROM collaboration.event_store ORDER BY position LIMIT 1"
        )
    finally:
        await conn.close()
    assert f"00-{TRACE_ID}-{id_of(command)}-" in metadata
    record, *_ = await read_topic(kafka_bootstrap, topic, 1)  # the registration, first
    envelope = from_kafka(record.key, record.value, record.headers)
    assert envelope.traceparent is not None
    assert envelope.traceparent.startswith(f"00-{TRACE_ID}-{id_of(command)}-")
