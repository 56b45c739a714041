"""Deterministic orchestration. Workflow modules import only plain data contracts."""
