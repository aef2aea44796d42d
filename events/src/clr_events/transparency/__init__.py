"""The transparency log of an event store: a Merkle tree over its positions (RFC 9162),
signed checkpoints (C2SP signed notes), proofs, witnesses, export and offline verification.

See docs/canonical-form.md for the exact bytes.
"""
