"""Logs: one structlog configuration for every service, JSON lines by default.

Every record (ours through ``logging.getLogger``, uvicorn's, aiokafka's, faust's) goes
through the root handler and comes out as one JSON object with ``timestamp`` (UTC),
``level``, ``logger``, ``event`` (the message), ``service``, ``instance``, and, where
known, ``correlation_id`` (bound per request and per consumed event) and ``trace_id`` /
``span_id`` (the current span's); a traceback is in ``exception``.
``CLR_LOG_FORMAT=console`` writes the same for a person at a terminal instead.

The outage filter (``clr_events.outage.RepeatFilter``) sits on the handler, as before:
one line per outage, not one per failed attempt.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import orjson
import structlog
from opentelemetry import trace

from clr_events.outage import RepeatFilter, install_log_filter

__all__ = ["bind_correlation", "configure_logging", "instance_name"]

FORMATS = ("json", "console")


def instance_name(environ: Mapping[str, str] = os.environ) -> str:
    """This process among the service's instances: ``CLR_INSTANCE_NAME``, or host:pid."""
    return environ.get("CLR_INSTANCE_NAME") or f"{socket.gethostname()}:{os.getpid()}"


def bind_correlation(correlation_id: str) -> None:
    """Name the correlation id in every line logged from here on in this task."""
    structlog.contextvars.bind_contextvars(correlation_id=correlation_id)


def _add_trace(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event


def _json(event: Mapping[str, Any], **_: Any) -> str:
    return orjson.dumps(event, default=repr).decode()


def configure_logging(
    service: str,
    *,
    level: str | int = "INFO",
    fmt: str = "json",
    instance: str | None = None,
    stream: Any = None,
) -> RepeatFilter:
    """Route every logger through one handler on the root (replacing its handlers) that
    writes ``fmt`` lines; returns the outage filter put on it.

    Raises:
        ValueError: ``fmt`` is neither ``json`` nor ``console``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"CLR_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {fmt!r}")
    static = {"service": service, "instance": instance or instance_name()}

    def add_static(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
        for key, value in static.items():
            event.setdefault(key, value)
        return event

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_static,
        _add_trace,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    final: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if fmt == "json":
        final.append(structlog.processors.format_exc_info)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared, processors=[*final, renderer]
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return install_log_filter()
