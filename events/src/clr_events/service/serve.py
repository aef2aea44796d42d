"""Run a service app with uvicorn: ``CLR_HOST`` / ``CLR_PORT`` override the defaults."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI


def serve(build: Callable[[], FastAPI], *, default_port: int) -> None:
    """Serve until SIGTERM/SIGINT (the lifespan stops relays and consumers cleanly)."""
    logging.basicConfig(
        level=os.environ.get("CLR_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    uvicorn.run(
        build(),
        host=os.environ.get("CLR_HOST", "127.0.0.1"),
        port=int(os.environ.get("CLR_PORT", default_port)),
        log_level=os.environ.get("CLR_LOG_LEVEL", "info").lower(),
        access_log=os.environ.get("CLR_ACCESS_LOG", "0") == "1",
    )
