"""Observability every service shares: Prometheus metrics, JSON logs, OpenTelemetry traces.

- ``metrics``: the process's metrics (HTTP per route template, event store appends, the
  process itself) and the families a service's runtime reports at scrape time (relay and
  consumer lag, dead letters, readiness), rendered in Prometheus' text format.
- ``state``: the families a ``Runtime`` reads at scrape time (the projections have theirs).
- ``logs``: one structlog configuration, JSON lines with service, instance, correlation id
  and trace id; the outage filter (``clr_events.outage.RepeatFilter``) stays on.
- ``tracing``: W3C trace context from the HTTP request into the event's metadata, onto
  the Kafka record (``ce_traceparent``/``ce_tracestate``, the CloudEvents distributed
  tracing extension), into consumers and projections. Off unless ``OTEL_TRACES_EXPORTER``
  names an exporter.
- ``middleware``: the ASGI middleware that does the HTTP part of all three in one layer.
"""
