"""Projections: read models, the public registry page, the public feed and exports."""
