"""The idempotent consumer runner and its checkpoints."""
