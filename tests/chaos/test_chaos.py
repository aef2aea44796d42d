"""The short chaos run inside the test suite: each service and PostgreSQL killed under load.

The suite's own PostgreSQL and Kafka are started by ``tests.chaos.run`` (never the stack
the other tests share); ``make chaos`` runs the long variant, the broker included.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_nothing_is_lost_or_doubled_when_services_and_postgresql_are_killed() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.chaos.run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    print(done.stdout)  # noqa: T201  (the recovery times, with -s or on failure)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-4000:]}"
