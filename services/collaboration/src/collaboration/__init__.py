"""Collaboration: organisation profiles, partnerships, agreements, matchmaking."""
