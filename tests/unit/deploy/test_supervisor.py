"""``make run``'s supervisor restarts a service that dies and leaves the others alone."""

from __future__ import annotations

import os
import signal
import socket
import textwrap
import threading
import time
from pathlib import Path

import pytest

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


def test_scale_names_each_instance_and_gives_it_the_next_port() -> None:
    scale = supervisor.parse_scale("projections=3, label_decisions=2")
    assert scale == {"projections": 3, "label_decisions": 2}
    found = supervisor.instances({"projections": 8100, "label_decisions": 8104}, scale)
    assert found == {
        "projections": ("projections", 8100),
        "projections-2": ("projections", 8110),
        "projections-3": ("projections", 8120),
        "label_decisions": ("label_decisions", 8104),
        "label_decisions-2": ("label_decisions", 8114),
    }
    every = supervisor.instances(supervisor.SERVICES, dict.fromkeys(supervisor.SERVICES, 9))
    assert len({port for _, port in every.values()}) == len(every) == 45  # no port twice


def test_scale_refuses_an_unknown_service_or_count() -> None:
    for text in ("nothing=2", "projections=0", "projections=10", "projections=two"):
        with pytest.raises(ValueError):
            supervisor.parse_scale(text)


def test_instances_of_one_service_run_side_by_side(tmp_path: Path) -> None:
    (tmp_path / "fake_service.py").write_text(SERVICE)
    first, step = free_port(), supervisor.PORT_STEP
    while not all(port_free(first + step * k) for k in range(3)):
        first = free_port()
    env = {"PYTHONPATH": str(tmp_path), "CLR_KAFKA_PASSWORDS_FILE": ""}
    running = supervisor.start(
        tmp_path / "logs",
        ports={"fake_service": first},
        env=env,
        timeout=30,
        scale={"fake_service": 3},
    )
    try:
        assert running.urls == {
            "fake_service": f"http://127.0.0.1:{first}",
            "fake_service-2": f"http://127.0.0.1:{first + step}",
            "fake_service-3": f"http://127.0.0.1:{first + 2 * step}",
        }
        assert all(p.poll() is None for p in running.processes.values())
        assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == [
            "fake_service-2.log",
            "fake_service-3.log",
            "fake_service.log",
        ]
    finally:
        running.stop()


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
