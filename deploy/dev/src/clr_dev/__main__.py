"""``python -m clr_dev run [--demo] [--scale projections=2,...]``: every service on its port
(several instances of those scaled), optionally with demo data.

PostgreSQL, Kafka and the topics come first (``make run`` does that). The development
token secret is created once in ``.local/jwt-secret`` and given to every service.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import time
from pathlib import Path

from clr_dev import demo, supervisor

LOCAL = Path(".local")


def jwt_secret() -> str:
    """The development token secret: from the environment, else ``.local/jwt-secret``."""
    if os.environ.get("CLR_JWT_SECRET"):
        return os.environ["CLR_JWT_SECRET"]
    path = LOCAL / "jwt-secret"
    if not path.exists():
        LOCAL.mkdir(exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def main() -> None:
    """Start the services, optionally generate the demo, serve until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m clr_dev")
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--demo", action="store_true", help="generate the demo history")
    parser.add_argument("--organisations", type=int, default=1300)
    parser.add_argument(
        "--scale",
        type=supervisor.parse_scale,
        default={},
        help="instances per service, e.g. projections=2,label_decisions=2",
    )
    args = parser.parse_args()

    os.environ["CLR_JWT_SECRET"] = jwt_secret()
    started = time.monotonic()
    print("starting the services ...", flush=True)  # noqa: T201
    running = supervisor.start(LOCAL / "logs", scale=args.scale)
    print(f"services ready in {time.monotonic() - started:.1f} s:")  # noqa: T201
    for name, url in running.urls.items():  # an instance beyond the first: <service>-<k>
        print(f"  {name:<24} {url}/docs")  # noqa: T201
    try:
        if args.demo:
            print(f"generating the demo history ({args.organisations} organisations) ...")  # noqa: T201
            summary = asyncio.run(demo.run(running.urls, organisations=args.organisations))
            print("demo data:", json.dumps(summary))  # noqa: T201
        print(  # noqa: T201
            "development tokens: make token ROLE=assessor (roles: registry_admin,"
            " collaboration_admin, training_admin, assessor, labelling_board, auditor)\n"
            "logs in .local/logs; a service that exits is restarted; Ctrl-C stops the services"
            " (make stop stops the stack)"
        )
        stop = False

        def on_signal(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        running.supervise(lambda: stop, report=lambda line: print(line, flush=True))  # noqa: T201
    finally:
        print("\nstopping the services ...")  # noqa: T201
        running.stop()


if __name__ == "__main__":
    main()
