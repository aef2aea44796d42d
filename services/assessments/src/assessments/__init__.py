"""Assessments: Bronze benchmarking, Silver audit, Gold assessment, approval."""

NAME = "assessments"
"""The service's name: the schema of its tables, the prefix of its topics and groups."""
