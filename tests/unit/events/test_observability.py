"""Metrics, logs and traces of the HTTP side, the codec and the unit of work (no I/O)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from clr_events.application.uow import Cause
from clr_events.codec import from_kafka, to_kafka
from clr_events.envelope import Envelope
from clr_events.observability import tracing
from clr_events.observability.logs import bind_correlation, configure_logging
from clr_events.observability.metrics import Families, render
from clr_events.observability.middleware import Observe, fastapi_telemetry
from clr_events.service import problems

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, into memory, for one test."""
    exporter = InMemorySpanExporter()
    tracing.configure("tests", {}, exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.disable()


def app(service: str) -> FastAPI:
    app = FastAPI(telemetry=fastapi_telemetry())
    problems.install(app)
    app.add_middleware(Observe, service=service)

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"id": item_id, **tracing.current_trace_metadata()}

    @app.get("/broken")
    async def broken() -> None:
        raise RuntimeError("boom")

    return app


async def get(target: FastAPI, path: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=target, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers=headers)


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_requests_are_counted_and_timed_by_route_template_not_path() -> None:
    # given a service whose route has a path parameter
    service = app("templates")

    # when three items, a path no route matches and a failing route are asked for
    for path in ("/items/a", "/items/b", "/items/c", "/nowhere/1", "/broken"):
        await get(service, path)

    # then the series are per template, never per raw path, with the status
    labels = {"service": "templates", "method": "GET"}
    assert sample("clr_http_requests_total", **labels, route="/items/{item_id}", status="200") == 3
    assert sample("clr_http_requests_total", **labels, route="unmatched", status="404") == 1
    assert sample("clr_http_requests_total", **labels, route="/broken", status="500") == 1
    count = sample("clr_http_request_duration_seconds_count", **labels, route="/items/{item_id}")
    assert count == 3
    assert sample("clr_http_requests_total", **labels, route="/items/a", status="200") is None


def test_the_exposition_has_help_type_and_escaped_label_values() -> None:
    # given a gauge and a counter whose label values need escaping
    families = Families()
    families.gauge("clr_test_lag", "A lag.", 3, relay='odd "name"\\with\nnewline')
    families.counter("clr_test_done", "Things done.", 7, group="g")

    # when rendered with the process's own metrics
    text = render(families).decode()

    # then each family has its help and type, labels are escaped, and it parses back
    assert "# HELP clr_test_lag A lag.\n# TYPE clr_test_lag gauge\n" in text
    assert 'clr_test_lag{relay="odd \\"name\\"\\\\with\\nnewline"} 3.0' in text
    parsed = {family.name: family for family in text_string_to_metric_families(text)}
    (lag,) = parsed["clr_test_lag"].samples
    assert lag.labels["relay"] == 'odd "name"\\with\nnewline'
    assert parsed["clr_test_done"].type == "counter"
    assert parsed["clr_test_done"].samples[0].value == 7
    assert "process_cpu_seconds" in parsed  # the process collector
    assert "clr_http_request_duration_seconds" in parsed


async def test_a_request_is_a_server_span_continuing_the_callers_trace(
    spans: InMemorySpanExporter,
) -> None:
    # when a request arrives with the caller's traceparent
    response = await get(app("traced"), "/items/x", traceparent=CALLER)

    # then a server span named by the route template continues the caller's trace
    (server,) = spans.get_finished_spans()
    assert server.name == "GET /items/{item_id}"
    assert server.kind is SpanKind.SERVER
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert server.parent is not None and format(server.parent.span_id, "016x") == CALLER[36:52]
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 200
    # and what the request does runs inside that span
    inner = response.json()["traceparent"]
    assert inner.startswith(f"00-{TRACE_ID}-{server.context.span_id:016x}-")


async def test_with_tracing_off_a_callers_trace_context_is_still_carried_on() -> None:
    # when tracing is off and a request carries a traceparent
    response = await get(app("untraced"), "/items/x", traceparent=CALLER)

    # then no span is made, and what the request stores would carry the caller's context
    assert not tracing.enabled()
    assert response.json()["traceparent"] == CALLER


async def test_a_caller_not_sampling_is_followed_without_a_span(
    spans: InMemorySpanExporter,
) -> None:
    unsampled = CALLER[:-2] + "00"
    response = await get(app("unsampled"), "/items/x", traceparent=unsampled)
    assert spans.get_finished_spans() == ()
    assert response.json()["traceparent"] == unsampled


def test_an_events_metadata_carries_the_trace_it_was_made_in(
    spans: InMemorySpanExporter,
) -> None:
    cause = Cause("alice", "corr-1")
    assert "traceparent" not in cause.metadata()
    with tracing.span("command") as span:
        assert span is not None
        metadata = cause.metadata(extra=1)
    context = span.get_span_context()
    assert metadata["traceparent"].startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
    assert metadata["correlation_id"] == "corr-1" and metadata["extra"] == 1
    assert [s.name for s in spans.get_finished_spans()] == ["command"]


def test_trace_context_travels_as_cloudevents_tracing_extension_headers() -> None:
    envelope = Envelope(
        id="e-1",
        source="/collaboration",
        type="collaboration.OrganisationRegistered.v1",
        subject="org-1",
        time=datetime(2026, 1, 2, tzinfo=UTC),
        streamversion=1,
        globalposition=9,
        data={},
        traceparent=CALLER,
        tracestate="vendor=1",
    )
    record = to_kafka(envelope)
    headers = dict(record.headers)
    assert headers["ce_traceparent"] == CALLER.encode()
    assert headers["ce_tracestate"] == b"vendor=1"
    decoded = from_kafka(record.key, record.value, record.headers)
    assert (decoded.traceparent, decoded.tracestate) == (CALLER, "vendor=1")
    untraced = to_kafka(envelope.model_copy(update={"traceparent": None, "tracestate": None}))
    assert not any(name.startswith("ce_trace") for name, _ in untraced.headers)


def test_sampled_is_the_lowest_bit_of_the_flags() -> None:
    assert tracing.sampled_header(CALLER) and tracing.sampled_header(CALLER[:-2] + "03")
    assert not tracing.sampled_header(CALLER[:-2] + "00")
    assert not tracing.sampled_header(CALLER[:-2] + "02")
    assert not tracing.sampled_header(None) and not tracing.sampled_header("")


def test_an_invalid_traceparent_is_no_context() -> None:
    assert tracing.context_of(None) is None
    assert tracing.context_of("00-nothex-00f067aa0ba902b7-01") is None
    assert tracing.context_of(f"00-{'0' * 32}-00f067aa0ba902b7-01") is None
    assert tracing.context_of(CALLER) is not None


def test_tracing_is_off_by_default_and_an_unknown_exporter_is_refused() -> None:
    assert tracing.configure("tests", {}) is False
    assert tracing.configure("tests", {"OTEL_TRACES_EXPORTER": "none"}) is False
    assert tracing.configure("tests", {"OTEL_SDK_DISABLED": "true"}) is False
    with pytest.raises(ValueError, match="unknown exporter"):
        tracing.configure("tests", {"OTEL_TRACES_EXPORTER": "carrier-pigeon"})
    tracing.disable()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("assessments", instance="host-1:42", stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_logs_are_json_lines_with_service_instance_correlation_and_trace(
    log_lines: io.StringIO, spans: InMemorySpanExporter
) -> None:
    # when a line is logged inside a request's span with its correlation id bound
    bind_correlation("corr-7")
    with tracing.span("request") as span:
        assert span is not None
        logging.getLogger("clr_events.test").warning("approved %s", "a-1")
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("clr_events.test").exception("failed")

    # then it is one JSON object naming all of them
    first, failed = lines(log_lines)
    assert first["event"] == "approved a-1"
    assert first["level"] == "warning"
    assert first["logger"] == "clr_events.test"
    assert first["service"] == "assessments"
    assert first["instance"] == "host-1:42"
    assert first["correlation_id"] == "corr-7"
    assert first["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert str(first["timestamp"]).endswith("Z")
    assert "trace_id" not in failed
    assert "ValueError: bad" in str(failed["exception"])


def test_an_outage_still_writes_one_line_not_one_per_attempt(log_lines: io.StringIO) -> None:
    # when aiokafka fails to connect a hundred times in a row
    for _ in range(100):
        logging.getLogger("aiokafka.conn").error("Unable connect to node with id %s", 1)

    # then one line is written
    assert [line["event"] for line in lines(log_lines)] == ["Unable connect to node with id 1"]


def test_a_trace_collector_away_is_one_line_too(log_lines: io.StringIO) -> None:
    exporter = logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    for _ in range(50):
        exporter.warning("Transient error %s encountered while exporting, retrying.", "refused")
    assert len(lines(log_lines)) == 1


def test_spans_of_the_finished_kind_only(spans: InMemorySpanExporter) -> None:
    with tracing.span("outer"), tracing.span("inner", kind=SpanKind.CONSUMER):
        pass
    finished: tuple[ReadableSpan, ...] = spans.get_finished_spans()
    inner, outer = finished
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    assert inner.kind is SpanKind.CONSUMER
