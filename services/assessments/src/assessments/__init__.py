"""Assessments: Bronze benchmarking, Silver audit, Gold assessment, approval."""
