"""Local tooling: run every service together, generate demo data through the real APIs."""
