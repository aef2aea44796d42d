"""Start every service as its own process, wait until each is ready, stop them all.

Used by ``make run`` and by the end-to-end tests alike, so both run the system the same
way: ``python -m <service>`` with ``CLR_PORT`` set and, on the local stack, the service's
own Kafka principal (``clr_dev.installation.principal_env``), logs in a folder, ready when
``/readyz`` answers 200.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from clr_dev.installation import principal_env

SERVICES: dict[str, int] = {
    "collaboration": 8101,
    "training_certification": 8102,
    "assessments": 8103,
    "label_decisions": 8104,
    "projections": 8100,
}
"""Every service and its default port."""


@dataclass
class Running:
    """The processes of a running system."""

    urls: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM every service (they stop relays and consumers cleanly), then wait."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The end of a service's log."""
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def start(
    logs: Path,
    *,
    ports: dict[str, int] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 90.0,
) -> Running:
    """Start every service; return when all are ready.

    Raises:
        RuntimeError: a service exited or was not ready in time (its log tail is included).
    """
    logs.mkdir(parents=True, exist_ok=True)
    chosen = ports or SERVICES
    running = Running({name: f"http://127.0.0.1:{port}" for name, port in chosen.items()}, logs)
    base = {**os.environ, **(env or {})}
    for name, port in chosen.items():
        with (logs / f"{name}.log").open("ab") as log:
            running.processes[name] = subprocess.Popen(
                [sys.executable, "-m", name],
                env={**base, **principal_env(name, base), "CLR_PORT": str(port)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    try:
        _wait_ready(running, timeout)
    except BaseException:
        running.stop()
        raise
    return running


def _wait_ready(running: Running, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = dict(running.urls)
    with httpx.Client(timeout=2.0) as client:
        while waiting:
            for name, url in list(waiting.items()):
                process = running.processes[name]
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {process.returncode}:\n{running.log_tail(name)}"
                    )
                try:
                    if client.get(f"{url}/readyz").status_code == 200:
                        del waiting[name]
                except httpx.HTTPError:
                    pass
            if waiting and time.monotonic() > deadline:
                name = next(iter(waiting))
                raise RuntimeError(
                    f"{name} not ready in {timeout:.0f} s:\n{running.log_tail(name)}"
                )
            if waiting:
                time.sleep(0.3)
