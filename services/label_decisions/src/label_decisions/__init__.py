"""The label decisions service: label records per organisation and level."""

NAME = "label_decisions"
"""The service's name: the schema of its tables, the prefix of its topics and groups."""
