"""A witness: another process, with its own key, that co-signs a log's checkpoints only
after checking each one extends the last it co-signed (C2SP tlog-cosignature/v1).

    python -m clr_events.transparency.witness --state DIR --name NAME \\
        --log-key VKEY --url http://127.0.0.1:8101 [--every SECONDS]

The first run creates the witness's key in ``DIR/witness.key`` (mode 600) and prints its
verifier key. Each round fetches the log's latest checkpoint and a consistency proof from
the last one co-signed (``DIR/<log>/last.state``), and writes the co-signed note to
``DIR/<log>/<size>.note``: checkpoints an auditor passes to ``clr-audit verify
--trusted-checkpoints DIR --witness-key <the witness's verifier key>``. A checkpoint that
does not extend the last one is refused (nothing is co-signed again until the log is
consistent with what the witness signed) and the witness exits with status 1.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

from clr_events.transparency.client import CheckpointMonitor, InconsistentCheckpointError
from clr_events.transparency.note import (
    COSIGNATURE_V1,
    Note,
    SignerKey,
    VerifierKey,
    load_or_create_key,
)


def log_directory(state: Path, key: VerifierKey) -> Path:
    """Where the witness keeps what it co-signed for one log."""
    return state / hashlib.sha256(key.name.encode()).hexdigest()[:16]


def cosign_once(state: Path, witness: SignerKey, log_key: VerifierKey, url: str) -> Note:
    """One round: fetch, check against the last co-signed, co-sign, keep.

    Raises:
        InconsistentCheckpointError: the log does not extend what was co-signed before.
    """
    directory = log_directory(state, log_key)
    monitor = CheckpointMonitor(log_key, directory / "last.state")
    checkpoint = monitor.fetch(url)
    assert monitor.last_note is not None
    cosigned = monitor.last_note.with_signature(witness.sign(monitor.last_note.text))
    (directory / f"{checkpoint.size}.note").write_text(cosigned.render())
    return cosigned


def main(argv: list[str] | None = None) -> int:
    """The witness's command line."""
    parser = argparse.ArgumentParser(description="Co-sign a log's consistent checkpoints.")
    parser.add_argument("--state", type=Path, required=True, help="the witness's directory")
    parser.add_argument("--name", required=True, help="the witness's key name")
    parser.add_argument("--log-key", required=True, help="the log's verifier key")
    parser.add_argument("--url", required=True, help="the log's service, http://host:port")
    parser.add_argument("--every", type=float, help="go on, one round every SECONDS")
    args = parser.parse_args(argv)
    witness = load_or_create_key(args.state / "witness.key", args.name, COSIGNATURE_V1)
    log_key = VerifierKey.parse(args.log_key)
    sys.stdout.write(f"witness key: {witness.verifier.text()}\n")
    while True:
        try:
            note = cosign_once(args.state, witness, log_key, args.url)
        except InconsistentCheckpointError as error:
            sys.stderr.write(f"refused: {error}\n")
            return 1
        except OSError as error:  # the log is away: try again next round
            sys.stderr.write(f"cannot reach {args.url}: {error}\n")
        else:
            sys.stdout.write(f"co-signed {note.text.splitlines()[1]} of {log_key.name}\n")
        if args.every is None:
            return 0
        sys.stdout.flush()
        time.sleep(args.every)


if __name__ == "__main__":
    raise SystemExit(main())
