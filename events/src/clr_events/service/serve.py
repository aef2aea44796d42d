"""Run a service app with uvicorn: ``CLR_HOST`` / ``CLR_PORT`` override the defaults.

The event loop is uvloop and the HTTP parser httptools (``uvicorn[standard]``), named
explicitly so a missing package fails at start instead of quietly falling back to the
slower pure-Python ones. ``CLR_UVICORN_LOOP=asyncio`` and ``CLR_UVICORN_HTTP=h11`` fall
back on purpose (for comparison, or a platform without the compiled packages). The
garbage collector is tuned for a server (``collect_less``, ``CLR_GC_YOUNG``). Logs are
JSON lines (``CLR_LOG_FORMAT=console`` for a terminal); tracing follows the ``OTEL_*``
variables (``clr_events.observability``).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Mapping
from typing import Any

import uvicorn
from fastapi import FastAPI

from clr_events.observability import tracing
from clr_events.observability.logs import configure_logging

LOOPS = ("uvloop", "asyncio")
"""Event loops a service may run on; the first is the default."""
PARSERS = ("httptools", "h11")
"""HTTP/1.1 parsers a service may use; the first is the default."""


def server_options(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Uvicorn's options for a service, from ``CLR_HOST``, ``CLR_PORT`` and friends.

    Raises:
        ValueError: ``CLR_UVICORN_LOOP`` or ``CLR_UVICORN_HTTP`` names no known choice.
    """
    loop = environ.get("CLR_UVICORN_LOOP", LOOPS[0])
    http = environ.get("CLR_UVICORN_HTTP", PARSERS[0])
    if loop not in LOOPS:
        raise ValueError(f"CLR_UVICORN_LOOP must be one of {', '.join(LOOPS)}, not {loop!r}")
    if http not in PARSERS:
        raise ValueError(f"CLR_UVICORN_HTTP must be one of {', '.join(PARSERS)}, not {http!r}")
    return {
        "host": environ.get("CLR_HOST", "127.0.0.1"),
        "loop": loop,
        "http": http,
        "log_level": environ.get("CLR_LOG_LEVEL", "info").lower(),
        "access_log": environ.get("CLR_ACCESS_LOG", "0") == "1",
    }


def serve(build: Callable[[], FastAPI], *, default_port: int) -> None:
    """Serve until SIGTERM/SIGINT (the lifespan stops relays and consumers cleanly).

    Raises:
        ValueError: a server setting names no known choice (see ``server_options``).
    """
    options = server_options()
    service = build.__module__.partition(".")[0]  # projections.service: projections
    # JSON lines with the outage filter on (aiokafka logs every failed attempt while a
    # broker is away); uvicorn's own loggers go through the same handler
    configure_logging(
        service,
        level=os.environ.get("CLR_LOG_LEVEL", "INFO").upper(),
        fmt=os.environ.get("CLR_LOG_FORMAT", "json"),
    )
    tracing.configure(service)  # before the app: its server spans follow
    app = build()
    collect_less(os.environ)
    uvicorn.run(app, port=int(os.environ.get("CLR_PORT", default_port)), log_config=None, **options)


def collect_less(environ: Mapping[str, str]) -> None:
    """The cyclic garbage collector tuned for a server: what the imports and the app's
    construction made is frozen out of every collection, and a young collection waits for
    ``CLR_GC_YOUNG`` allocations (Python's default: 700; a request makes a few hundred
    objects, nearly all freed by reference counting, so the default collects several
    times a request for little). ``CLR_GC_YOUNG=700`` restores the default."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(int(environ.get("CLR_GC_YOUNG", "20000")), middle, old)
