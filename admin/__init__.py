"""Operator commands that run beside the service, not inside it (`python -m admin.keys`)."""
