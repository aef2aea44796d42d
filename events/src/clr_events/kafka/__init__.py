"""Kafka helpers: topic declarations."""
