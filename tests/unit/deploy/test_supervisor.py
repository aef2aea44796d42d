"""``make run``'s supervisor restarts a service that dies and leaves the others alone."""

from __future__ import annotations

import os
import signal
import socket
import textwrap
import threading
import time
from pathlib import Path

from clr_dev import supervisor

SERVICE = textwrap.dedent(
    """
    import os
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Ready(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    HTTPServer(("127.0.0.1", int(os.environ["CLR_PORT"])), Ready).serve_forever()
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_killed_service_is_restarted_and_the_others_keep_running(tmp_path: Path) -> None:
    for name in ("first_fake", "second_fake"):
        (tmp_path / f"{name}.py").write_text(SERVICE)
    ports = {"first_fake": free_port(), "second_fake": free_port()}
    env = {"PYTHONPATH": str(tmp_path), "CLR_KAFKA_PASSWORDS_FILE": ""}
    running = supervisor.start(tmp_path / "logs", ports=ports, env=env, timeout=30)
    stop = threading.Event()
    lines: list[str] = []
    watcher = threading.Thread(
        target=running.supervise,
        args=(stop.is_set,),
        kwargs={"report": lines.append, "restart_first": 0.1, "poll": 0.05},
    )
    watcher.start()
    try:
        killed = running.processes["first_fake"].pid
        other = running.processes["second_fake"]
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while running.restarts.get("first_fake", 0) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        supervisor._wait_ready(running, 30)  # the restarted one answers /readyz again
        assert running.processes["first_fake"].pid != killed
        assert running.processes["second_fake"] is other and other.poll() is None
        assert running.restarts == {"first_fake": 1}
        assert lines[0].startswith("first_fake exited with -9; restarting in")
    finally:
        stop.set()
        watcher.join()
        running.stop()
