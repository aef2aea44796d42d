"""Training and certification: people, courses, certificates, expert certifications per role."""
