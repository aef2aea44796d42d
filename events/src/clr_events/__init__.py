"""Shared event library of the cluster label registry.

Envelope and codec (CloudEvents 1.0), the contract registry with upcasters, the event
store port with its PostgreSQL and in-memory adapters, the outbox relay and the
idempotent consumer runner.
"""
