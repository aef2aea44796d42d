"""``python -m clr_events.service.probe [readyz|healthz]``: a container's healthcheck.

Exits 0 when the service in this container (``CLR_PORT`` on 127.0.0.1) answers 200 on
the path, 1 otherwise, with the reason on stderr. The image has Python but no curl;
docker-compose.yml uses it, Kubernetes probes the same paths over HTTP itself.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

PATHS = ("readyz", "healthz")


def probe(port: int, path: str = "readyz", timeout: float = 3.0) -> str | None:
    """None when ``http://127.0.0.1:<port>/<path>`` answers 200, else why not."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=timeout) as answer:
            return None if answer.status == 200 else f"answered {answer.status}"
    except urllib.error.HTTPError as error:
        return f"answered {error.code}"
    except OSError as error:  # refused, timed out, reset
        return str(error)


def main(argv: list[str] | None = None) -> int:
    """The command line: the path (readyz by default), the port from ``CLR_PORT``."""
    args = sys.argv[1:] if argv is None else argv
    path = args[0] if args else "readyz"
    port = os.environ.get("CLR_PORT", "")
    if path not in PATHS or not port.isdigit():
        usage = f"usage: CLR_PORT=<port> python -m clr_events.service.probe {'|'.join(PATHS)}"
        print(usage, file=sys.stderr)  # noqa: T201
        return 2
    failure = probe(int(port), path)
    if failure is not None:
        print(f"/{path} on port {port}: {failure}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
