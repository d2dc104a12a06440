"""Artifacts a device consumes (placeholder: being written)."""
