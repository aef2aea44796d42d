"""How a service is served: uvloop and httptools unless a setting falls back; the collector
tuned for a server."""

from __future__ import annotations

import gc

import pytest
import uvicorn
import uvloop
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from clr_events.service.serve import collect_less, server_options


def loaded(options: dict[str, object]) -> uvicorn.Config:
    config = uvicorn.Config(FastAPI(), port=0, **options)  # type: ignore[arg-type]
    config.load()
    return config


def test_a_service_runs_on_uvloop_and_httptools_by_default() -> None:
    options = server_options({})
    assert (options["loop"], options["http"]) == ("uvloop", "httptools")
    config = loaded(options)
    assert config.get_loop_factory() is uvloop.new_event_loop
    assert config.http_protocol_class is HttpToolsProtocol


def test_settings_fall_back_to_the_pure_python_loop_and_parser() -> None:
    options = server_options({"CLR_UVICORN_LOOP": "asyncio", "CLR_UVICORN_HTTP": "h11"})
    config = loaded(options)
    assert config.get_loop_factory() is not uvloop.new_event_loop
    assert config.http_protocol_class is H11Protocol


def test_host_logging_and_access_log_come_from_the_environment() -> None:
    options = server_options(
        {"CLR_HOST": "0.0.0.0", "CLR_LOG_LEVEL": "WARNING", "CLR_ACCESS_LOG": "1"}
    )
    assert options["host"] == "0.0.0.0"
    assert options["log_level"] == "warning"
    assert options["access_log"] is True
    assert server_options({})["access_log"] is False


@pytest.mark.parametrize(
    ("name", "value"), [("CLR_UVICORN_LOOP", "auto"), ("CLR_UVICORN_HTTP", "websockets")]
)
def test_an_unknown_choice_is_refused_at_start(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        server_options({name: value})


def test_a_server_collects_young_objects_less_often_and_never_what_it_started_with() -> None:
    before = gc.get_threshold()
    try:
        collect_less({})
        assert gc.get_threshold() == (20000, *before[1:])
        assert gc.get_freeze_count() > 0  # the modules and the app: out of every collection
        collect_less({"CLR_GC_YOUNG": "700"})
        assert gc.get_threshold()[0] == 700
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
