"""Receivables use cases (placeholder: being built)."""

from __future__ import annotations

from utilis_shared.inbox import HandlerRegistry

registry = HandlerRegistry()
