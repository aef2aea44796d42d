"""The container healthcheck: 0 on a 200, 1 on anything else, 2 when misused."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from clr_events.service.probe import main


class _Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response({"/readyz": 503, "/healthz": 200}.get(self.path, 404))
        self.end_headers()

    def log_message(self, *_: object) -> None:
        return None


@pytest.fixture
def port() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_200_passes_and_a_503_fails(
    port: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CLR_PORT", str(port))
    assert main(["healthz"]) == 0
    assert main(["readyz"]) == 1
    assert f"/readyz on port {port}: answered 503" in capsys.readouterr().err


def test_nothing_listening_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        free = unused.getsockname()[1]
    monkeypatch.setenv("CLR_PORT", str(free))
    assert main([]) == 1


@pytest.mark.parametrize(("args", "port"), [(["metrics"], "8101"), (["readyz"], "")])
def test_an_unknown_path_or_no_port_is_a_usage_error(
    args: list[str], port: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLR_PORT", port)
    assert main(args) == 2
