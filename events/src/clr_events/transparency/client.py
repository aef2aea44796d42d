"""A checkpoint monitor for subscribers, auditors and witnesses: it keeps the last
checkpoint it accepted and accepts a new one only if it is signed by the log's key and
the log proves (RFC 9162 consistency proof) that the old tree is a prefix of the new one.

    monitor = CheckpointMonitor(VerifierKey.parse(vkey), Path("state/last.note"))
    checkpoint = monitor.fetch("http://127.0.0.1:8101")  # raises if inconsistent
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from clr_events.transparency.merkle import verify_consistency
from clr_events.transparency.note import Checkpoint, Note, VerifierKey, open_checkpoint


class InconsistentCheckpointError(Exception):
    """A checkpoint that does not extend the last one accepted: the log forked or was
    rewritten (keep both notes: together they are the evidence)."""


class CheckpointMonitor:
    """The last checkpoint accepted from one log, kept in ``state`` (a note file)."""

    def __init__(self, key: VerifierKey, state: Path | None = None) -> None:
        self.key = key
        self.state = state
        self.last: Checkpoint | None = None
        self.last_note: Note | None = None
        if state is not None and state.exists():
            self.last, self.last_note = open_checkpoint(state.read_text(), key)

    def check(self, rendered: str, proof: Sequence[bytes]) -> Checkpoint:
        """Accept a checkpoint note if it is signed and consistent with the last one.

        Raises:
            NoteError: not a checkpoint of this log's key.
            InconsistentCheckpointError: smaller than the last, or not proved to extend it.
        """
        checkpoint, note = open_checkpoint(rendered, self.key)
        last = self.last
        if last is not None:
            if checkpoint.size < last.size:
                raise InconsistentCheckpointError(
                    f"{self.key.name}: size {checkpoint.size} after {last.size}"
                )
            if not verify_consistency(
                last.size, checkpoint.size, last.root, checkpoint.root, proof
            ):
                raise InconsistentCheckpointError(
                    f"{self.key.name}: the tree of {checkpoint.size} does not extend the tree"
                    f" of {last.size} accepted before"
                )
        self.last, self.last_note = checkpoint, note
        if self.state is not None:
            self.state.parent.mkdir(parents=True, exist_ok=True)
            self.state.write_text(note.render())
        return checkpoint

    def fetch(self, base_url: str, timeout: float = 10.0) -> Checkpoint:
        """Fetch the log's latest checkpoint and the consistency proof from the last one
        accepted (``/transparency/checkpoint`` and ``/transparency/proofs/consistency``).

        Raises:
            NoteError: not a checkpoint of this log's key.
            InconsistentCheckpointError: the log does not extend what was accepted.
            OSError: the log cannot be reached.
        """
        rendered = _get(f"{base_url}/transparency/checkpoint", timeout).decode()
        size = Checkpoint.parse(Note.parse(rendered).text).size
        proof: list[bytes] = []
        if self.last is not None and 0 < self.last.size < size:
            query = urllib.parse.urlencode({"first": self.last.size, "second": size})
            answer = json.loads(
                _get(f"{base_url}/transparency/proofs/consistency?{query}", timeout)
            )
            proof = [base64.b64decode(node) for node in answer["proof"]]
        return self.check(rendered, proof)


def _get(url: str, timeout: float) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
        return body
