"""Collaboration: organisation profiles, partnerships, agreements, matchmaking."""

NAME = "collaboration"
"""The service's name: the schema of its tables, the prefix of its topics and groups."""
