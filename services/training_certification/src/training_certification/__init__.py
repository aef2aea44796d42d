"""Training and certification: people, courses, certificates, expert certifications per role."""

NAME = "training_certification"
"""The service's name: the schema of its tables, the prefix of its topics and groups."""
