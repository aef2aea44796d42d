"""OpenTelemetry tracing: one trace from the HTTP command to the read model.

The W3C trace context (``traceparent``, ``tracestate``) travels:

1. from the HTTP request into the request's span (``middleware.Observe`` continues the
   caller's trace, or starts one), which the command runs in;
2. into every event the command stores, as metadata (``Cause.metadata``);
3. from the stored event onto its public envelope and Kafka record (the relay), as the
   CloudEvents distributed tracing extension: ``ce_traceparent`` / ``ce_tracestate``.
   The envelope carries the context of the event's creation unchanged (as the extension
   asks), so a republished event has the same headers;
4. into the consumer (``consumers.runner``: a consumer span, a child of the creation
   context, current while the handler runs, so events it stores continue the trace) and
   the projections (a span per event applied to a read model).

Tracing is off unless ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``: OTLP over
HTTP, configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables; ``console``), and
``OTEL_SDK_DISABLED=true`` keeps it off. Off, no span is made; a ``traceparent`` that
arrives is still carried on (into metadata and onto Kafka), so a caller's trace is not cut.
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_TRACES_SAMPLER`` work as
the SDK defines them; below a trace that is not sampled no span is built (as the default
parent-based samplers record none), the context is only carried on.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "TRACER",
    "SpanKind",
    "configure",
    "context_of",
    "current_trace_metadata",
    "disable",
    "enabled",
    "sampled",
    "sampled_header",
    "span",
]

TRACER = trace.get_tracer("clr_events")
"""The tracer of every span the registry makes (it follows the provider set later)."""

_PROPAGATOR = TraceContextTextMapPropagator()
_state = {"enabled": False}


def enabled() -> bool:
    """Whether spans are made and exported in this process."""
    return _state["enabled"]


def configure(
    service: str,
    environ: Mapping[str, str] = os.environ,
    *,
    exporter: Any | None = None,
) -> bool:
    """Turn tracing on if ``OTEL_TRACES_EXPORTER`` names an exporter, or ``exporter`` (a
    ``SpanExporter``, e.g. the SDK's in-memory one in tests) is given; returns whether it
    is on. A second call adds its exporter to the provider already set.

    Raises:
        ValueError: ``OTEL_TRACES_EXPORTER`` names no exporter this knows.
    """
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    names = [
        name.strip()
        for name in environ.get("OTEL_TRACES_EXPORTER", "none").split(",")
        if name.strip() not in ("", "none")
    ]
    if exporter is None and not names:
        return enabled()
    # the SDK only when tracing is on: an idle service imports none of it
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        attributes = {"service.name": environ.get("OTEL_SERVICE_NAME") or service}
        provider = TracerProvider(resource=Resource.create(attributes))
        trace.set_tracer_provider(provider)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    _state["enabled"] = True
    return True


def disable() -> None:
    """Make no more spans (the provider and its exporters stay; a test's way out)."""
    _state["enabled"] = False


def _exporter(name: str) -> Any:
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    raise ValueError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (otlp, console, none)")


def context_of(traceparent: str | None, tracestate: str | None = None) -> Context | None:
    """The trace context a ``traceparent`` (and ``tracestate``) names; None if none or
    invalid."""
    if not traceparent:
        return None
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    context = _PROPAGATOR.extract(carrier)
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


def sampled(context: Context) -> bool:
    """Whether the span a context names is sampled (its ``traceparent`` flags)."""
    return trace.get_current_span(context).get_span_context().trace_flags.sampled


def sampled_header(traceparent: str | None) -> bool:
    """Whether a ``traceparent`` header names a sampled span (its flags' lowest bit)."""
    if not traceparent:
        return False
    return traceparent[-1] in "13579bdfBDF"


def current_trace_metadata() -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) of the current span; empty outside a trace."""
    carrier: dict[str, str] = {}
    if trace.get_current_span().get_span_context().is_valid:
        _PROPAGATOR.inject(carrier)
    return carrier


@contextlib.contextmanager
def span(
    name: str,
    *,
    parent: Context | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span | None]:
    """A current span while tracing is on (a child of ``parent``, or of the current span);
    off, or under a ``parent`` that is not sampled, only ``parent`` is made current (so
    what is stored inside still carries it; the SDK's parent-based samplers, the default,
    would record nothing there either, after building a span to say so)."""
    if enabled() and (parent is None or sampled(parent)):
        with TRACER.start_as_current_span(
            name, context=parent, kind=kind, attributes=attributes
        ) as current:
            yield current
        return
    if parent is None:
        yield None
        return
    token = otel_context.attach(parent)
    try:
        yield None
    finally:
        otel_context.detach(token)
