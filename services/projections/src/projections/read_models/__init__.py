"""The read models, each owning its tables and its progress."""
