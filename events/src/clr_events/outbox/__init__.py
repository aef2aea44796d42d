"""The transactional outbox relay."""
