"""Start every service as its own process, wait until each is ready, keep them running,
stop them all.

Used by ``make run`` and by the end-to-end tests alike, so both run the system the same
way: ``python -m <service>`` with ``CLR_PORT`` set and, on the local stack, the service's
own Kafka principal (``clr_dev.installation.principal_env``), logs in a folder, ready when
``/readyz`` answers 200. :meth:`Running.supervise` restarts a service that exits (with
backoff and jitter) and leaves the others alone.

Scale-out: ``scale`` (``make run SCALE=projections=2,label_decisions=2``) starts several
instances of a service, each its own process: the first as ``<service>`` on the service's
port, the others as ``<service>-2``, ``<service>-3`` ... on that port plus 10, 20 ...
Instances of a service share its work as in a cluster (consumer groups, one relay per
store by advisory lock).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
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

PORT_STEP = 10
"""Instance ``k`` (from 1) of a service listens on its port plus ``PORT_STEP * (k - 1)``."""
MAX_INSTANCES = 9


def parse_scale(text: str) -> dict[str, int]:
    """``"projections=2,label_decisions=2"`` as instances per service.

    Raises:
        ValueError: an unknown service, or a count outside 1..9.
    """
    scale: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, count = item.partition("=")
        if name not in SERVICES:
            raise ValueError(f"no service {name!r}: one of {', '.join(SERVICES)}")
        if not count.isdigit() or not 1 <= int(count) <= MAX_INSTANCES:
            raise ValueError(f"{name}: instances from 1 to {MAX_INSTANCES}, not {count!r}")
        scale[name] = int(count)
    return scale


def instances(ports: dict[str, int], scale: dict[str, int]) -> dict[str, tuple[str, int]]:
    """Each instance's name -> (its service, its port)."""
    found: dict[str, tuple[str, int]] = {}
    for name, port in ports.items():
        for k in range(1, scale.get(name, 1) + 1):
            found[name if k == 1 else f"{name}-{k}"] = (name, port + PORT_STEP * (k - 1))
    return found


@dataclass
class Running:
    """The processes of a running system."""

    urls: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    environments: dict[str, dict[str, str]] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    modules: dict[str, str] = field(default_factory=dict)
    """Instance name -> the service's module (the name itself when absent)."""

    def launch(self, name: str) -> None:
        """Start (or start again) instance ``name``, its output appended to its log."""
        with (self.logs / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", self.modules.get(name, name)],
                env=self.environments[name],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def supervise(
        self,
        stopping: Callable[[], bool],
        *,
        report: Callable[[str], None] = print,
        restart_first: float = 1.0,
        restart_max: float = 30.0,
        healthy_after: float = 60.0,
        poll: float = 0.5,
    ) -> None:
        """Until ``stopping()``: restart each service that exits, after a pause that
        doubles (with jitter) while it keeps dying within ``healthy_after`` seconds of
        its start; the other services are left alone."""
        delays = dict.fromkeys(self.processes, restart_first)
        started = dict.fromkeys(self.processes, time.monotonic())
        due: dict[str, float] = {}
        while not stopping():
            now = time.monotonic()
            for name, process in self.processes.items():
                if name in due or process.poll() is None:
                    continue
                if now - started[name] >= healthy_after:
                    delays[name] = restart_first
                pause = delays[name] * random.uniform(0.5, 1.0)
                delays[name] = min(delays[name] * 2, restart_max)
                due[name] = now + pause
                report(f"{name} exited with {process.returncode}; restarting in {pause:.1f} s")
            for name, when in list(due.items()):
                if now >= when:
                    del due[name]
                    self.launch(name)
                    started[name] = time.monotonic()
                    self.restarts[name] = self.restarts.get(name, 0) + 1
                    report(f"{name} restarted (pid {self.processes[name].pid})")
            time.sleep(poll)

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
    scale: dict[str, int] | None = None,
) -> Running:
    """Start every service (``scale``: that many instances of it, see the module's
    docstring); return when all are ready.

    Raises:
        RuntimeError: a service exited or was not ready in time (its log tail is included).
    """
    logs.mkdir(parents=True, exist_ok=True)
    chosen = instances(ports or SERVICES, scale or {})
    running = Running(
        {name: f"http://127.0.0.1:{port}" for name, (_, port) in chosen.items()},
        logs,
        modules={name: service for name, (service, _) in chosen.items()},
    )
    # the events' dataschema: where this installation's projections serve the schemas
    served: dict[str, str] = {}
    projections = running.urls.get("projections")
    if projections:
        served["CLR_SCHEMA_BASE_URL"] = f"{projections}/schemas"
    certification = running.urls.get("training_certification")
    if certification:  # where the expert list asks for names
        served["CLR_TRAINING_CERTIFICATION_URL"] = certification
    base = {**served, **os.environ, **(env or {})}
    for name, (service, port) in chosen.items():
        running.environments[name] = {
            **base,
            **principal_env(service, base),
            "CLR_PORT": str(port),
        }
        running.launch(name)
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
