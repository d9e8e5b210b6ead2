"""Reconciliation use cases (placeholder: being built)."""
