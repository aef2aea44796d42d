"""The application layer: units of work, command results, the shape of aggregates (no HTTP)."""
